//! The data routes shared by `p2-proxy` and `p3-handler` (included by
//! both with `#[path]`): the standard `wasi:keyvalue@0.2.0-draft` and
//! `wasi:config@0.2.0-rc.1`, bound with plain `wit-bindgen` from the
//! upstream WIT, none of our SDK.
//!
//! | path | answer |
//! | --- | --- |
//! | `/kv/get?store=S&key=K` | the value, or 404 `absent` |
//! | `/kv/set?store=S&key=K&value=V` | `ok` |
//! | `/kv/delete?store=S&key=K` | `ok` |
//! | `/kv/exists?store=S&key=K` | `true` or `false` |
//! | `/kv/incr?store=S&key=K&by=N` | the new value |
//! | `/kv/keys?store=S` | every key, one a line, sorted (all pages of `list-keys`) |
//! | `/kv/get-many?store=S&keys=a,b` | `key=value` or `key absent`, one a line |
//! | `/kv/set-many?store=S&pairs=a:1,b:2` | `ok` |
//! | `/config?name=X` | the value, or 404 `unset` |
//! | `/config/all` | `name=value`, one a line |
//!
//! A store error is a 500 whose body is the error.

wit_bindgen::generate!({
    inline: "
        package fixture:data;
        world data {
            import wasi:keyvalue/store@0.2.0-draft;
            import wasi:keyvalue/atomics@0.2.0-draft;
            import wasi:keyvalue/batch@0.2.0-draft;
            import wasi:config/store@0.2.0-rc.1;
        }
    ",
    path: ["../../../wit/deps/keyvalue-draft", "../../../wit/deps/config"],
    world: "fixture:data/data",
    generate_all,
});

use wasi::keyvalue::{atomics, batch, store};

/// The answer to a data route, or `None` when `path` is not one.
pub(crate) fn answer(path: &str, arg: impl Fn(&str) -> String) -> Option<(u16, String)> {
    let result = match path {
        "/config" => {
            return Some(match wasi::config::store::get(&arg("name")) {
                Ok(Some(value)) => (200, value),
                Ok(None) => (404, "unset".into()),
                Err(error) => (500, format!("{error:?}")),
            });
        }
        "/config/all" => {
            return Some(match wasi::config::store::get_all() {
                Ok(all) => (200, all.iter().map(|(k, v)| format!("{k}={v}\n")).collect()),
                Err(error) => (500, format!("{error:?}")),
            });
        }
        _ if path.starts_with("/kv/") => kv(&path[4..], &arg),
        _ => return None,
    };
    Some(match result {
        Ok(answer) => answer,
        Err(error) => (500, format!("{error:?}")),
    })
}

fn kv(op: &str, arg: &dyn Fn(&str) -> String) -> Result<(u16, String), store::Error> {
    let bucket = store::open(&arg("store"))?;
    let key = arg("key");
    Ok(match op {
        "get" => match bucket.get(&key)? {
            Some(value) => (200, String::from_utf8_lossy(&value).into_owned()),
            None => (404, "absent".into()),
        },
        "set" => {
            bucket.set(&key, arg("value").as_bytes())?;
            (200, "ok".into())
        }
        "delete" => {
            bucket.delete(&key)?;
            (200, "ok".into())
        }
        "exists" => (200, bucket.exists(&key)?.to_string()),
        "incr" => {
            let by = arg("by").parse().unwrap_or(1);
            (200, atomics::increment(&bucket, &key, by)?.to_string())
        }
        "keys" => {
            let mut keys = Vec::new();
            let mut cursor = None;
            loop {
                let page = bucket.list_keys(cursor)?;
                keys.extend(page.keys);
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            keys.sort();
            (200, keys.iter().map(|k| format!("{k}\n")).collect())
        }
        "get-many" => {
            let keys: Vec<String> = arg("keys").split(',').map(str::to_string).collect();
            let found = batch::get_many(&bucket, &keys)?;
            let lines = keys.iter().zip(found).map(|(key, pair)| match pair {
                Some((_, value)) => format!("{key}={}\n", String::from_utf8_lossy(&value)),
                None => format!("{key} absent\n"),
            });
            (200, lines.collect())
        }
        "set-many" => {
            let pairs: Vec<(String, Vec<u8>)> = arg("pairs")
                .split(',')
                .filter_map(|pair| pair.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            batch::set_many(&bucket, &pairs)?;
            (200, "ok".into())
        }
        _ => (404, "not found".into()),
    })
}
