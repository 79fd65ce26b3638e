//! The open-file limit. Every tracker connection is a descriptor, and the
//! usual soft limit (1,024, or 20,000 here) is far below a fleet: the server
//! and the benchmark harness raise it at start.

/// Raises RLIMIT_NOFILE towards `want`: the soft limit up to the hard one,
/// and the hard one too when the process may (root, CAP_SYS_RESOURCE).
/// Returns the soft limit in force afterwards.
#[cfg(unix)]
// `rlim_t` is u64 on Linux but not on every Unix: the casts are for those.
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile(want: u64) -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let want = want as libc::rlim_t;
    if limit.rlim_cur >= want {
        return Ok(limit.rlim_cur as u64);
    }
    if limit.rlim_max < want {
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: want,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(want as u64);
        }
        // Not privileged: the hard limit is as far as we may go.
    }
    let soft = libc::rlimit {
        rlim_cur: want.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(soft.rlim_cur as u64)
}

#[cfg(not(unix))]
pub fn raise_nofile(_want: u64) -> std::io::Result<u64> {
    Ok(0)
}

/// What a server or harness asks for: more than 2 × 100k connections plus
/// files, within Linux's default `fs.nr_open` (1,048,576).
pub const WANT_NOFILE: u64 = 1 << 20;

/// Raises the limit and logs the outcome; a failure is a warning, since a
/// small fleet runs within any limit.
pub fn raise_and_log() -> u64 {
    match raise_nofile(WANT_NOFILE) {
        Ok(limit) => {
            tracing::debug!(limit, "open-file limit");
            limit
        }
        Err(error) => {
            tracing::warn!(%error, "could not raise the open-file limit");
            0
        }
    }
}
