//! What `std`'s prelude gives every module, from `alloc` (the core is
//! `no_std`).

pub(crate) use alloc::borrow::ToOwned;
#[cfg(test)]
pub(crate) use alloc::format;
pub(crate) use alloc::string::{String, ToString};
pub(crate) use alloc::vec;
pub(crate) use alloc::vec::Vec;
