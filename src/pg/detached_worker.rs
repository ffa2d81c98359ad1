//! One job in a short-lived background worker, with its own transaction, while the caller waits:
//! the request bytes travel in a dynamic shared memory segment, and the worker may overwrite
//! them with its answer before it exits. Used for what must be committed outside the caller's
//! transaction (privacy charges, refusal events): it survives the caller's ROLLBACK or ERROR and
//! works where the caller cannot write (parallel mode).

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, DynamicBackgroundWorker, SignalWakeFlags,
};
use pgrx::pg_sys;

/// Why a job did not run to its end.
#[derive(Debug)]
pub enum Failure {
    /// No background worker slot was free (`max_worker_processes`).
    NoSlot,
    /// The worker stopped without finishing (see the server log).
    Died,
}

/// Header of the segment: where to connect, then the payload length.
#[repr(C)]
#[derive(Clone, Copy)]
struct Header {
    database: pg_sys::Oid,
    role: pg_sys::Oid,
    len: u32,
}

/// Runs the worker entry point `function` (an exported `extern "C-unwind"` symbol of this
/// library that calls [`serve`]) on `payload`, connected to the current database as `role`;
/// waits for it and returns the payload as the worker left it.
pub fn run(
    name: &str,
    function: &str,
    role: pg_sys::Oid,
    payload: &[u8],
) -> Result<Vec<u8>, Failure> {
    let launched = {
        let _held = crate::pg::held_interrupts::HeldInterrupts::new();
        launch(name, function, role, payload)?
    };
    launched.wait()
}

/// A job whose worker has been registered: it runs to its end whether or not this backend
/// waits for it.
pub struct Launched {
    seg: *mut pg_sys::dsm_segment,
    body: *const u8,
    len: usize,
    worker: DynamicBackgroundWorker,
}

/// The first half of [`run`]: copies `payload` into a segment and registers the worker. The
/// job must run even if this backend then stops waiting (statement_timeout, a cancel): a
/// refusal event or a charge outlives the caller's ERROR. Call it with interrupts held
/// (`HeldInterrupts`) from the moment the job is decided, so that no interrupt falls between
/// deciding and launching (the attacker pass of issue 29 lost 13 of 58 refusal events to a
/// 2-7 ms statement_timeout; the last one between the event's LOG line and the launch).
pub fn launch(
    name: &str,
    function: &str,
    role: pg_sys::Oid,
    payload: &[u8],
) -> Result<Launched, Failure> {
    let header = Header {
        // SAFETY: a backend global set when the session connected; read on the backend's only
        // thread.
        database: unsafe { pg_sys::MyDatabaseId },
        role,
        len: payload.len() as u32,
    };
    // SAFETY: dsm_create (flags 0) raises an ERROR through pgrx's guard rather than return NULL,
    // and maps a segment of `size` bytes: the header and then the payload are written inside it
    // (unaligned write: the address is only as aligned as the mapping). The pin keeps the
    // segment alive past this backend's detach (at the end of `wait`, or by the resource owner
    // at an ERROR) until the worker, once attached, unpins it; a segment whose worker could not
    // be registered is unpinned at once and detached.
    unsafe {
        let size = std::mem::size_of::<Header>() + payload.len();
        let seg = pg_sys::dsm_create(size, 0);
        let base = pg_sys::dsm_segment_address(seg) as *mut u8;
        std::ptr::write_unaligned(base as *mut Header, header);
        let body = base.add(std::mem::size_of::<Header>());
        std::ptr::copy_nonoverlapping(payload.as_ptr(), body, payload.len());
        let handle = pg_sys::dsm_segment_handle(seg);
        pg_sys::dsm_pin_segment(seg);
        match start(name, function, handle) {
            Err(_) => {
                pg_sys::dsm_unpin_segment(handle);
                pg_sys::dsm_detach(seg);
                Err(Failure::NoSlot)
            }
            Ok(worker) => Ok(Launched {
                seg,
                body,
                len: payload.len(),
                worker,
            }),
        }
    }
}

impl Launched {
    /// Waits for the worker (interruptibly) and returns the payload as it left it.
    pub fn wait(self) -> Result<Vec<u8>, Failure> {
        let result = match self.worker.wait_for_shutdown() {
            Err(_) => Err(Failure::Died),
            // SAFETY: body points to len payload bytes of the segment, still attached (only
            // detached below); the worker has exited, so nothing writes them any more.
            Ok(()) => Ok(unsafe { std::slice::from_raw_parts(self.body, self.len) }.to_vec()),
        };
        // SAFETY: the segment `launch` attached and nobody detached since (an ERROR in the wait
        // unwinds past this line, and the resource owner detaches it instead).
        unsafe { pg_sys::dsm_detach(self.seg) };
        result
    }
}

/// Starts a dynamic background worker of this library running `function` (an exported
/// `extern "C-unwind"` symbol) on the segment `handle`; it is not restarted and tells this backend
/// when it starts and stops.
pub fn start(
    name: &str,
    function: &str,
    handle: pg_sys::dsm_handle,
) -> Result<DynamicBackgroundWorker, pgrx::bgworkers::DynamicBackgroundWorkerLoadError> {
    BackgroundWorkerBuilder::new(name)
        .set_type(name)
        .set_library("pg_encrypt_ml")
        .set_function(function)
        .set_argument(Some(pg_sys::Datum::from(handle)))
        .enable_spi_access()
        .set_restart_time(None)
        // SAFETY: reads this backend's pid.
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic()
}

/// The worker side: attaches to the segment named by `arg`, connects, runs `job` on the payload
/// in a transaction, and writes back what it returns (same length). The caller pinned the
/// segment, so it is there even if the caller gave up waiting; the worker unpins it, and it goes
/// away when the last of the two detaches.
pub fn serve(
    arg: pg_sys::Datum,
    job: impl FnOnce(Vec<u8>) -> Vec<u8> + std::panic::UnwindSafe + std::panic::RefUnwindSafe,
) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGTERM);
    let handle = arg.value() as pg_sys::dsm_handle;
    // SAFETY: `arg` is the handle `run` passed as the worker's argument; dsm_attach returns NULL
    // (checked) if that segment no longer exists.
    let seg = unsafe { pg_sys::dsm_attach(handle) };
    if seg.is_null() {
        return;
    }
    // SAFETY: the caller pinned this segment once, for this worker alone; unpinning it while
    // attached only lets it be destroyed at the last detach.
    unsafe { pg_sys::dsm_unpin_segment(handle) };
    // SAFETY: seg is attached (non-null above) and stays attached until dsm_detach at the end;
    // `run` laid it out as a Header followed by header.len payload bytes, so both pointers are
    // inside the mapping.
    let (header, body) = unsafe {
        let base = pg_sys::dsm_segment_address(seg) as *mut u8;
        (
            std::ptr::read_unaligned(base as *const Header),
            base.add(std::mem::size_of::<Header>()),
        )
    };
    // SAFETY: body points to header.len bytes of the attached segment, copied out at once; the
    // caller does not touch them while the worker runs.
    let request = unsafe { std::slice::from_raw_parts(body, header.len as usize).to_vec() };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(header.database), Some(header.role));
    let answer = BackgroundWorker::transaction(move || job(request));
    // SAFETY: the segment is still attached (a mapping made outside any resource owner lasts
    // until detached); at most header.len bytes are written, the payload's room, from a Vec
    // that cannot overlap the mapping. The caller reads them only after this worker exits.
    unsafe {
        let n = answer.len().min(header.len as usize);
        std::ptr::copy_nonoverlapping(answer.as_ptr(), body, n);
        pg_sys::dsm_detach(seg);
    }
}
