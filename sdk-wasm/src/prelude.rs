//! What `std`'s prelude gives every module, from `alloc`: the crate has no
//! `std` in the browser.

pub(crate) use alloc::borrow::ToOwned;
pub(crate) use alloc::string::{String, ToString};
pub(crate) use alloc::vec::Vec;
