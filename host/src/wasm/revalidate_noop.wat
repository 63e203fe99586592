;; `switchyard:server/revalidate` for hosts that are not Switchyard: they
;; have no Switchyard response cache, so there is nothing to revalidate and
;; both functions answer `ok`. `switchyard compose` plugs it into the apps
;; that import the interface, so the composition runs under any wasi:http
;; host. Written in WAT so that what it does is read here, not built.
(component
  (core module $noop
    (memory (export "memory") 1)
    ;; Every string argument is copied to offset 1024, growing the memory as
    ;; it needs; it is never read.
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $need i32)
      (local.set $need (i32.add (i32.const 1024) (local.get 3)))
      (block $fits
        (br_if $fits (i32.le_u (local.get $need) (i32.mul (memory.size) (i32.const 65536))))
        (drop (memory.grow
          (i32.add
            (i32.div_u (i32.sub (local.get $need) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536))
            (i32.const 1))))
      )
      (i32.const 1024))
    ;; `result<_, string>` is returned through memory: offset 0 holds the
    ;; case, 0 (`ok`), and is never written.
    (func (export "revalidate") (param i32 i32) (result i32)
      (i32.const 0))
  )
  (core instance $i (instantiate $noop))
  (type $answer (result (error string)))
  (func $path (param "path" string) (result $answer)
    (canon lift (core func $i "revalidate") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func $tag (param "tag" string) (result $answer)
    (canon lift (core func $i "revalidate") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (instance $revalidate
    (export "revalidate-path" (func $path))
    (export "revalidate-tag" (func $tag)))
  (export "switchyard:server/revalidate@0.2.0" (instance $revalidate))
)
