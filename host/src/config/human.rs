//! Values written for people: sizes (`"64MiB"`), durations (`"30s"`), and a
//! path or a list of paths, each refused with a reason that says how to
//! write it.

use std::path::PathBuf;

/// `"a.wasm"` or `["a.wasm", "b.wasm"]`.
pub(in crate::config) fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<PathBuf>, D::Error> {
    struct Paths;
    impl<'de> serde::de::Visitor<'de> for Paths {
        type Value = Vec<PathBuf>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a path or a list of paths")
        }
        fn visit_str<E: serde::de::Error>(self, path: &str) -> Result<Self::Value, E> {
            Ok(vec![PathBuf::from(path)])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut paths = Vec::new();
            while let Some(path) = seq.next_element::<PathBuf>()? {
                paths.push(path);
            }
            Ok(paths)
        }
    }
    d.deserialize_any(Paths)
}

pub(in crate::config) mod human_duration {
    use serde::{Deserialize, Deserializer, de::Error};
    use std::time::Duration;

    pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        let duration = humantime::parse_duration(&text).map_err(|e| {
            D::Error::custom(format!(
                "invalid duration \"{text}\": {e} (write it like \"30s\" or \"500ms\")"
            ))
        })?;
        if duration.is_zero() {
            return Err(D::Error::custom("must be longer than zero"));
        }
        Ok(duration)
    }
}

pub(in crate::config) mod human_size {
    use serde::{Deserialize, Deserializer, de::Error};

    pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        let size: bytesize::ByteSize = text.parse().map_err(|e| {
            D::Error::custom(format!(
                "invalid size \"{text}\": {e} (write it like \"128MiB\")"
            ))
        })?;
        if size.as_u64() == 0 {
            return Err(D::Error::custom("must be larger than zero"));
        }
        Ok(size.as_u64())
    }
}

/// An optional [`human_duration`].
pub(in crate::config) mod human_duration_option {
    use serde::Deserializer;
    use std::time::Duration;

    pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::human_duration::deserialize(d).map(Some)
    }
}

/// An optional [`human_size`].
pub(in crate::config) mod human_size_option {
    use serde::Deserializer;

    pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<u64>, D::Error> {
        super::human_size::deserialize(d).map(Some)
    }
}
