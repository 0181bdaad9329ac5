use heartline_protocol::{FieldError, validate_name};
use yew::prelude::*;
use yew_hooks::use_local_storage;

const NAME_KEY: &str = "heartline.name";

/// The display name of this browser, remembered in localStorage.
#[derive(Clone, PartialEq)]
pub struct DisplayNameHandle {
    stored: yew_hooks::UseLocalStorageHandle<String>,
}

impl DisplayNameHandle {
    /// The saved name, if it is (still) a valid one.
    pub fn name(&self) -> Option<String> {
        (*self.stored)
            .as_deref()
            .and_then(|name| validate_name(name).ok())
    }

    /// Validates `name` by the server's own rules and saves it trimmed.
    pub fn set(&self, name: &str) -> Result<String, FieldError> {
        let name = validate_name(name)?;
        self.stored.set(name.clone());
        Ok(name)
    }

    /// Forgets the name, so the prompt asks again.
    pub fn clear(&self) {
        self.stored.delete();
    }
}

/// The display name, with a way to set and change it.
#[hook]
pub fn use_display_name() -> DisplayNameHandle {
    DisplayNameHandle {
        stored: use_local_storage::<String>(NAME_KEY.to_owned()),
    }
}

impl std::fmt::Debug for DisplayNameHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisplayNameHandle")
            .field("stored", &*self.stored)
            .finish()
    }
}
