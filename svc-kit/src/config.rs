//! Configuration: defaults that work on a developer machine, overridden by
//! environment variables such as `CALL_DATABASE__URL` (`__` separates sections).

use figment::{
    Figment,
    providers::{Env, Serialized},
};
use serde::{Serialize, de::DeserializeOwned};

/// Loads `T` from its `Default` overlaid with the variables that start with
/// `prefix` (for example `"CALL_"`). The error names the offending key.
pub fn load<T>(prefix: &str) -> anyhow::Result<T>
where
    T: Serialize + DeserializeOwned + Default,
{
    Figment::from(Serialized::defaults(T::default()))
        .merge(Env::prefixed(prefix).split("__"))
        .extract()
        .map_err(|e| anyhow::anyhow!("invalid {prefix}* configuration: {e}"))
}
