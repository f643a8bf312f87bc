//! The plumbing shared by the SQL functions the segments job registers on
//! every SQLite connection (`figures`, `histogram`): registration, reading a
//! call's arguments, an aggregate's state, and reporting an error.

use std::ffi::{CStr, c_int};

use libsqlite3_sys as ffi;

/// The callbacks of a function: `Scalar(xFunc)` or `Aggregate(xStep, xFinal)`.
pub enum Callbacks {
    Scalar(unsafe extern "C" fn(*mut ffi::sqlite3_context, c_int, *mut *mut ffi::sqlite3_value)),
    Aggregate(
        unsafe extern "C" fn(*mut ffi::sqlite3_context, c_int, *mut *mut ffi::sqlite3_value),
        unsafe extern "C" fn(*mut ffi::sqlite3_context),
    ),
}

/// Register a deterministic, innocuous UTF-8 function `name` of `args`
/// arguments, without user data; the error is SQLite's code.
///
/// # Safety
/// `db` must be an open connection that no other thread uses during the
/// call (sqlx's `LockedSqliteHandle` guarantees both), and the callbacks
/// must never unwind.
pub unsafe fn register(
    db: *mut ffi::sqlite3,
    name: &'static CStr,
    args: c_int,
    callbacks: Callbacks,
) -> Result<(), c_int> {
    let (func, step, finish) = match callbacks {
        Callbacks::Scalar(func) => (Some(func), None, None),
        Callbacks::Aggregate(step, finish) => (None, Some(step), Some(finish)),
    };
    // SAFETY: as the caller promises; the name is NUL-terminated and
    // static; there is no user data to free.
    let rc = unsafe {
        ffi::sqlite3_create_function_v2(
            db,
            name.as_ptr(),
            args,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC | ffi::SQLITE_INNOCUOUS,
            std::ptr::null_mut(),
            func,
            step,
            finish,
            None,
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rc)
    }
}

/// The arguments of a call, if there are `n` of them.
///
/// # Safety
/// `argc` and `argv` must be those SQLite passed to the callback; the slice
/// is valid for the duration of the call.
pub unsafe fn arguments<'a>(
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
    n: usize,
) -> Option<&'a [*mut ffi::sqlite3_value]> {
    if usize::try_from(argc).ok() != Some(n) || argv.is_null() {
        return None;
    }
    // SAFETY: SQLite passes `argc` valid value pointers for this call.
    Some(unsafe { std::slice::from_raw_parts(argv, n) })
}

/// An integer argument; `None` for NULL.
///
/// # Safety
/// `value` must be an argument of the current call.
pub unsafe fn int(value: *mut ffi::sqlite3_value) -> Option<i64> {
    // SAFETY: as the caller promises.
    unsafe {
        (ffi::sqlite3_value_type(value) != ffi::SQLITE_NULL)
            .then(|| ffi::sqlite3_value_int64(value))
    }
}

/// The state SQLite keeps for the group `ctx` aggregates: zeroed at the
/// group's first call, freed by SQLite after its `xFinal`. With `allocate`
/// false (in `xFinal`) a group that never stepped gets `None` instead of an
/// allocation; with `allocate` true, `None` means SQLite is out of memory.
///
/// # Safety
/// `ctx` must be the context SQLite passed to the callback, all-zero bytes
/// must be a valid `T`, and the reference must not outlive the call.
pub unsafe fn aggregate_state<'a, T>(
    ctx: *mut ffi::sqlite3_context,
    allocate: bool,
) -> Option<&'a mut T> {
    const {
        assert!(
            std::mem::align_of::<T>() <= 8,
            "SQLite aligns its blocks to 8 bytes"
        )
    };
    let size = if allocate {
        c_int::try_from(std::mem::size_of::<T>()).unwrap_or(c_int::MAX)
    } else {
        0
    };
    // SAFETY: as the caller promises; SQLite returns NULL or a zeroed,
    // 8-byte aligned block of `size` bytes that lives until `xFinal`
    // returns and belongs to this group alone.
    unsafe {
        ffi::sqlite3_aggregate_context(ctx, size)
            .cast::<T>()
            .as_mut()
    }
}

/// End the call with the error `message`.
///
/// # Safety
/// `ctx` must be the context SQLite passed to the callback.
pub unsafe fn error(ctx: *mut ffi::sqlite3_context, message: &CStr) {
    // SAFETY: as the caller promises; -1 reads up to the NUL.
    unsafe { ffi::sqlite3_result_error(ctx, message.as_ptr(), -1) };
}

/// The bytes of a text argument; `None` for a value of another type.
///
/// # Safety
/// As [`bytes`].
pub unsafe fn text<'a>(value: *mut ffi::sqlite3_value) -> Option<&'a [u8]> {
    // SAFETY: as the caller promises.
    unsafe { bytes(value, ffi::SQLITE_TEXT) }
}

/// The bytes of a blob argument; `None` for a value of another type.
///
/// # Safety
/// As [`bytes`].
pub unsafe fn blob<'a>(value: *mut ffi::sqlite3_value) -> Option<&'a [u8]> {
    // SAFETY: as the caller promises.
    unsafe { bytes(value, ffi::SQLITE_BLOB) }
}

/// The bytes of an argument of type `kind` (`SQLITE_TEXT` or
/// `SQLITE_BLOB`; empty for an empty one), `None` for another type.
///
/// # Safety
/// `value` must be an argument of the current call; the slice is valid
/// until the call returns or the value is read in another way.
unsafe fn bytes<'a>(value: *mut ffi::sqlite3_value, kind: c_int) -> Option<&'a [u8]> {
    // SAFETY: as the caller promises; the pointer is taken before the
    // length, as SQLite asks, and is valid for that many bytes.
    unsafe {
        if ffi::sqlite3_value_type(value) != kind {
            return None;
        }
        let ptr = if kind == ffi::SQLITE_TEXT {
            ffi::sqlite3_value_text(value)
        } else {
            ffi::sqlite3_value_blob(value).cast::<u8>()
        };
        let len = usize::try_from(ffi::sqlite3_value_bytes(value)).unwrap_or(0);
        Some(if ptr.is_null() || len == 0 {
            &[][..]
        } else {
            std::slice::from_raw_parts(ptr, len)
        })
    }
}
