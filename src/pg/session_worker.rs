//! A job run in a session of its own, for work during which other roles' code runs (the code
//! table owners attach to their tables) and must not reach the caller's session: its large-object
//! descriptors, advisory locks, sequences' `currval`, random seed. A dynamic background worker
//! connects to the current database, takes the caller's session and current roles, runs the job
//! in one transaction of its own and sends back its answer, or its error, through a shared-memory
//! queue, with the notices and warnings raised meanwhile; the caller raises them again as its own.
//! The worker's transaction commits on its own: the caller's ROLLBACK does not undo it.

use encml_core::relayed_text::{shown, visible};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerStatus};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport, ErrorReportWithLevel};
use pgrx::{PgLogLevel, PgSqlErrorCode, PgTryBuilder};
use serde_json::{json, Value};
use std::cell::RefCell;

/// Ring size of the answer queue; answers of any length pass through it in pieces.
const QUEUE_BYTES: usize = 64 * 1024;
/// Notices and warnings carried back at most (the rest are counted in one last warning).
const MAX_MESSAGES: usize = 100;

#[repr(C)]
#[derive(Clone, Copy)]
struct Header {
    database: pg_sys::Oid,
    session_user: pg_sys::Oid,
    current_user: pg_sys::Oid,
    len: u32,
}

/// Offset of the queue (8-aligned, after header and request) and the segment's size.
fn layout(request_len: usize) -> (usize, usize) {
    let queue = (std::mem::size_of::<Header>() + request_len + 7) & !7;
    (queue, queue + QUEUE_BYTES)
}

/// Terminates the worker if the caller leaves (ERROR, cancel) before it answered.
struct Running(Option<pgrx::bgworkers::DynamicBackgroundWorker>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(worker) = self.0.take() {
            let _ = worker.terminate();
        }
    }
}

/// Runs the worker entry point `function` (an exported `extern "C-unwind"` symbol of this
/// library that calls [`serve`]) on `request` as the caller, waits for its answer and returns it;
/// raises its error (same SQLSTATE) and, first, its notices and warnings.
pub fn run(name: &str, function: &str, request: &[u8]) -> String {
    // Code a worker runs (an owner's trigger) may not start another: an export or erasure
    // nested in one is not what the caller asked for, and each would take a worker slot
    // (attacker round 10 used it to hang the caller before waits were lock waits).
    if serving() {
        crate::pg::errors::raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{name}: cannot be called from code that a subject export or erasure runs"),
            Some("It would run in a session of its own that the running export or erasure waits for.".into()),
            None,
        )
    }
    let (queue_at, size) = layout(request.len());
    // SAFETY: the segment is ours and `size` long; header, request and queue lie inside it at
    // the offsets `layout` gives; the queue is set up before the worker can attach to it.
    let (seg, mqh) = unsafe {
        let header = Header {
            database: pg_sys::MyDatabaseId,
            session_user: pg_sys::GetSessionUserId(),
            current_user: pg_sys::GetUserId(),
            len: request.len() as u32,
        };
        let seg = pg_sys::dsm_create(size, 0);
        let base = pg_sys::dsm_segment_address(seg) as *mut u8;
        std::ptr::write_unaligned(base as *mut Header, header);
        std::ptr::copy_nonoverlapping(
            request.as_ptr(),
            base.add(std::mem::size_of::<Header>()),
            request.len(),
        );
        let mq = pg_sys::shm_mq_create(base.add(queue_at) as *mut _, QUEUE_BYTES);
        pg_sys::shm_mq_set_receiver(mq, pg_sys::MyProc);
        (seg, pg_sys::shm_mq_attach(mq, seg, std::ptr::null_mut()))
    };
    // SAFETY: seg is the segment created and attached just above (dsm_create raises rather
    // than return NULL).
    let handle = unsafe { pg_sys::dsm_segment_handle(seg) };
    let Ok(worker) = crate::pg::detached_worker::start(name, function, handle) else {
        crate::pg::errors::raise_full(
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            format!("{name}: no background worker slot free"),
            Some("It runs in a session of its own, in a background worker.".into()),
            Some("Raise max_worker_processes, or retry when fewer workers run.".into()),
        )
    };
    let mut running = Running(Some(worker));
    // The worker first tells its transaction (a virtual transaction id), then answers after its
    // commit or abort: the wait between is a lock wait, for Postgres's deadlock detector to see.
    let mut answer = receive(mqh, &mut running);
    if let Some(vxid) = answer.as_deref().and_then(started_transaction) {
        let pid = running.0.as_ref().and_then(|w| w.pid().ok()).unwrap_or(0);
        stop_at_exit(pid);
        wait_for_transaction(vxid);
        stop_at_exit(0);
        answer = receive(mqh, &mut running);
    }
    // It answers after its commit: let it exit rather than be terminated.
    if let Some(worker) = running.0.take() {
        let _ = worker.wait_for_shutdown();
    }
    // SAFETY: seg is still attached (an ERROR since dsm_create would have left through the
    // resource owner's cleanup instead); the answer was copied out of the queue, and mqh, whose
    // queue lives in the segment, is not used again.
    unsafe { pg_sys::dsm_detach(seg) };
    let Some(answer) = answer else {
        crate::pg::errors::internal_full(
            format!("{name}: the background worker stopped without answering"),
            Some(
                "Nothing it did was committed unless its audit record says so; see the server log."
                    .into(),
            ),
            None,
        )
    };
    let message: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    for m in message["messages"].as_array().into_iter().flatten() {
        report(m, level_of(m));
    }
    if let Some(error) = message.get("error") {
        report(error, PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
    message["answer"].as_str().unwrap_or_default().to_string()
}

/// The next message from the worker, waiting for it on the latch; None if the worker stopped
/// without sending one. Ends this session (FATAL) if its client went away meanwhile.
fn receive(mqh: *mut pg_sys::shm_mq_handle, running: &mut Running) -> Option<Vec<u8>> {
    loop {
        let (mut len, mut data) = (0usize, std::ptr::null_mut());
        // SAFETY: `mqh` is our attached receiving end; on success `data` points to `len` bytes
        // valid until the next receive.
        let got = unsafe { pg_sys::shm_mq_receive(mqh, &mut len, &mut data, true) };
        match got {
            pg_sys::shm_mq_result::SHM_MQ_SUCCESS => {
                // SAFETY: on success shm_mq_receive set `data` to `len` bytes, valid until the
                // next receive on mqh; they are copied at once.
                return Some(
                    unsafe { std::slice::from_raw_parts(data as *const u8, len) }.to_vec(),
                );
            }
            pg_sys::shm_mq_result::SHM_MQ_DETACHED => return None,
            _ => {
                let stopped = running.0.as_ref().is_some_and(|w| {
                    matches!(
                        w.pid(),
                        Err(BackgroundWorkerStatus::Stopped
                            | BackgroundWorkerStatus::PostmasterDied)
                    )
                });
                if stopped {
                    // SAFETY: as above: `mqh` is our attached receiving end, `len` and `data`
                    // locals it writes; nowait = true, so it does not block.
                    let again = unsafe { pg_sys::shm_mq_receive(mqh, &mut len, &mut data, true) };
                    return (again == pg_sys::shm_mq_result::SHM_MQ_SUCCESS).then(|| {
                        // SAFETY: on success `data` points to `len` bytes valid until the next
                        // receive; copied at once.
                        unsafe { std::slice::from_raw_parts(data as *const u8, len) }.to_vec()
                    });
                }
                // SAFETY: plain latch wait; the worker's messages and exit set our latch.
                let woke = unsafe {
                    let woke = pg_sys::WaitLatch(
                        pg_sys::MyLatch,
                        (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH)
                            as i32,
                        1000,
                        pg_sys::PG_WAIT_EXTENSION,
                    );
                    pg_sys::ResetLatch(pg_sys::MyLatch);
                    woke
                };
                pgrx::check_for_interrupts!();
                if woke & pg_sys::WL_TIMEOUT as i32 != 0 && client_gone() {
                    if let Some(w) = running.0.take() {
                        w.terminate();
                    }
                    // SAFETY: what Postgres's own connection check sets; the interrupt check
                    // then ends this session (FATAL), as for any lost client.
                    unsafe {
                        pg_sys::ClientConnectionLost = 1;
                        pg_sys::InterruptPending = 1;
                    }
                    pgrx::check_for_interrupts!();
                }
            }
        }
    }
}

/// The first message a worker sends: `TRANSACTION_TAG`, then its virtual transaction id.
const TRANSACTION_TAG: &[u8; 4] = b"vxid";

fn started_transaction(message: &[u8]) -> Option<pg_sys::VirtualTransactionId> {
    let rest = message.strip_prefix(TRANSACTION_TAG)?;
    let (backend, local) = rest.split_at_checked(4)?;
    Some(pg_sys::VirtualTransactionId {
        backendId: i32::from_ne_bytes(backend.try_into().ok()?),
        localTransactionId: u32::from_ne_bytes(local.try_into().ok()?),
    })
}

/// Waits for the worker's transaction to end as Postgres waits for another transaction (CREATE
/// INDEX CONCURRENTLY's wait): in the lock table, where the deadlock detector sees this session
/// wait for the worker. A worker that waits for a lock this session holds, directly or through
/// other sessions (also sessions waiting for workers of their own), is a deadlock: one of them
/// gets 40P01 (attacker rounds 9 and 11: on a latch, the two waited until a timeout). The
/// caller's lock_timeout is for the worker's lock waits (it is passed on), not for the worker's
/// whole run; a client that goes away ends the wait (client_connection_check_interval, one
/// second, unless set).
fn wait_for_transaction(vxid: pg_sys::VirtualTransactionId) {
    // SAFETY: GUCs set at a new nesting level, undone below or by the abort of an ERROR; the
    // timeout is Postgres's own client check, which re-arms itself while the interval is set.
    unsafe {
        let level = pg_sys::NewGUCNestLevel();
        let set = |name: &std::ffi::CStr, value: &std::ffi::CStr| {
            crate::pg::identity::save_setting(name, value)
        };
        set(c"lock_timeout", c"0");
        if pg_sys::client_connection_check_interval == 0 && !pg_sys::MyProcPort.is_null() {
            set(c"client_connection_check_interval", c"1000");
        }
        if pg_sys::client_connection_check_interval > 0
            && !pg_sys::MyProcPort.is_null()
            && !get_timeout_active(CLIENT_CONNECTION_CHECK_TIMEOUT)
        {
            enable_timeout_after(
                CLIENT_CONNECTION_CHECK_TIMEOUT,
                pg_sys::client_connection_check_interval,
            );
        }
        pg_sys::VirtualXactLock(vxid, true);
        pg_sys::AtEOXact_GUC(true, level);
    }
}

thread_local! {
    /// The worker this backend waits for in `wait_for_transaction`, and whether the exit
    /// callback that stops it is registered.
    static WAITED_FOR: std::cell::Cell<(i32, bool)> = const { std::cell::Cell::new((0, false)) };
}

/// Makes this backend's exit stop the worker `pid` (0: none): a session that ends while it
/// waits (its client went away: FATAL, which unwinds nothing) must not leave the worker running
/// for nobody, holding its locks.
fn stop_at_exit(pid: i32) {
    let (_, registered) = WAITED_FOR.with(|w| w.get());
    if !registered {
        // SAFETY: registers a callback for this backend's exit; it only signals a pid.
        unsafe { pg_sys::before_shmem_exit(Some(stop_waited_for), pg_sys::Datum::from(0usize)) };
    }
    WAITED_FOR.with(|w| w.set((pid, true)));
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn stop_waited_for(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    let (pid, _) = WAITED_FOR.with(|w| w.get());
    if pid > 0 {
        // SAFETY: SIGTERM to the worker still waited for (its handler aborts its transaction).
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// utils/timeout.h (not in pgrx's bindings): TimeoutId CLIENT_CONNECTION_CHECK_TIMEOUT.
const CLIENT_CONNECTION_CHECK_TIMEOUT: std::ffi::c_int = 10;

unsafe extern "C-unwind" {
    fn enable_timeout_after(id: std::ffi::c_int, delay_ms: std::ffi::c_int);
    fn get_timeout_active(id: std::ffi::c_int) -> bool;
}

/// Whether this session's client closed its connection (Postgres notices only when it next
/// reads from the client, or with client_connection_check_interval): the worker, holding its
/// locks, would otherwise run on for nobody.
fn client_gone() -> bool {
    // SAFETY: a poll of this backend's client socket (WL_SOCKET_CLOSED), only in a backend that
    // has a client.
    unsafe { !pg_sys::MyProcPort.is_null() && !pq_check_connection() }
}

unsafe extern "C-unwind" {
    /// libpq/libpq.h (not in pgrx's bindings): false once the client closed its connection.
    fn pq_check_connection() -> bool;
}

fn level_of(m: &Value) -> PgLogLevel {
    if m["level"].as_i64() == Some(pg_sys::WARNING as i64) {
        PgLogLevel::WARNING
    } else {
        PgLogLevel::NOTICE
    }
}

/// Raises a message the worker carried back, with its SQLSTATE, detail, hint and (for notices
/// and warnings, which return) context.
fn report(m: &Value, level: PgLogLevel) {
    let code = PgSqlErrorCode::from(m["sqlstate"].as_i64().unwrap_or(0) as i32);
    let mut r = ErrorReport::new(
        code,
        visible(m["message"].as_str().unwrap_or("(no message)")),
        "pg_encrypt_ml",
    );
    if let Some(d) = m["detail"].as_str() {
        r = r.set_detail(visible(d));
    }
    if let Some(h) = m["hint"].as_str() {
        r = r.set_hint(visible(h));
    }
    let context = m["context"]
        .as_str()
        .filter(|_| level < PgLogLevel::ERROR)
        // Line breaks escaped too: the owner's SQL text and function names are part of the
        // context, and a line break in them started a line of its own (attacker round 10).
        .and_then(|c| std::ffi::CString::new(visible(c)).ok());
    let Some(context) = context else {
        r.report(level);
        return;
    };
    let mut callback = pg_sys::ErrorContextCallback {
        // SAFETY: reads the backend's current context stack, restored below.
        previous: unsafe { pg_sys::error_context_stack },
        callback: Some(add_context),
        arg: context.as_ptr() as *mut std::ffi::c_void,
    };
    // SAFETY: `callback` and `context` outlive the report, which returns (below ERROR); the stack
    // is restored before they go.
    unsafe {
        pg_sys::error_context_stack = &mut callback;
        r.report(level);
        pg_sys::error_context_stack = callback.previous;
    }
}

unsafe extern "C-unwind" {
    fn errcontext_msg(fmt: *const std::ffi::c_char, ...) -> std::ffi::c_int;
}

/// Adds the worker's CONTEXT lines to the message being reported.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn add_context(arg: *mut std::ffi::c_void) {
    // SAFETY: `arg` is the NUL-terminated context `report` passes; "%s" takes it as is.
    unsafe { errcontext_msg(c"%s".as_ptr(), arg as *const std::ffi::c_char) };
}

unsafe extern "C-unwind" {
    /// Postgres's `die` itself (pgrx's `pg_sys::die` is a guarded Rust wrapper, not a handler).
    #[link_name = "die"]
    fn postgres_die(signal: std::ffi::c_int);
}

/// Whether this backend is a worker of `serve`.
pub fn serving() -> bool {
    SERVING.with(|s| s.get())
}

thread_local! {
    static SERVING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Messages kept for the caller, and how many of other roles' code were left out.
    static CAUGHT: RefCell<(Vec<Value>, usize)> = const { RefCell::new((Vec::new(), 0)) };
    /// While other roles' code may run (`foreign`): what it is doing, for its messages.
    static FOREIGN: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A relayed field escaped and cut to `MAX_FIELD_BYTES` (an owner's notice of megabytes,
/// attacker round 9), as the caller shows it (`report` escapes again, which changes nothing).
fn bounded(text: Option<String>) -> Option<String> {
    text.map(|t| shown(&t))
}

fn c_text(p: *const std::ffi::c_char) -> Option<String> {
    (!p.is_null()).then(|| {
        // SAFETY: p is checked non-null above; the callers pass fields of the ErrorData being
        // reported, which Postgres gives as NULL or NUL-terminated strings live while it is
        // reported; the text is copied into a String at once.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned()
    })
}

/// Keeps the worker's notices and warnings for the caller (the worker has no client). Those
/// raised while other roles' code may run are marked with where they come from, so they cannot
/// pass for the extension's own (attacker round 6); only `MAX_MESSAGES` of them are kept.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn keep_message(edata: *mut pg_sys::ErrorData) {
    // SAFETY: Postgres passes the message being reported.
    let e = unsafe { &mut *edata };
    if (pg_sys::NOTICE as i32..=pg_sys::WARNING as i32).contains(&e.elevel) {
        // The caller raises it again, and its own backend logs it as its settings say.
        e.output_to_server = false;
        let origin = FOREIGN.with(|f| f.borrow().clone());
        CAUGHT.with(|c| {
            let (kept, left_out) = &mut *c.borrow_mut();
            if origin.is_some()
                && kept.iter().filter(|m| m["foreign"] == true).count() >= MAX_MESSAGES
            {
                *left_out += 1;
                return;
            }
            let message = c_text(e.message).unwrap_or_default();
            let message = match &origin {
                Some(origin) => format!("{origin}: {message}"),
                None => message,
            };
            kept.push(json!({
                "level": e.elevel, "sqlstate": e.sqlerrcode,
                "message": bounded(Some(message)),
                "detail": bounded(c_text(e.detail)), "hint": bounded(c_text(e.hint)),
                "context": bounded(c_text(e.context)),
                "foreign": origin.is_some(),
            }));
        });
    }
}

/// Restores `FOREIGN` when `foreign` ends, by return or by error.
struct ForeignScope(Option<String>);

impl Drop for ForeignScope {
    fn drop(&mut self) {
        let previous = self.0.take();
        FOREIGN.with(|f| *f.borrow_mut() = previous);
    }
}

/// Runs `f`, during which code of other roles may run (a table owner's policies, triggers and
/// types' functions): its notices and warnings, and its error, reach the caller prefixed with
/// `doing` ("while erasing the subject's rows in public.t as its owner"), never as the
/// extension's own. The error keeps its SQLSTATE, so a serialization failure is still retried.
pub fn foreign<R>(doing: &str, f: impl FnOnce() -> R) -> R {
    let _scope = ForeignScope(FOREIGN.with(|c| c.borrow_mut().replace(doing.to_string())));
    let doing = doing.to_string();
    PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
        .catch_others(move |e| {
            let r = report_of(&e);
            let mut again = ErrorReport::new(
                r.sql_error_code(),
                format!("{doing}: {}", r.message()),
                "pg_encrypt_ml",
            );
            if let Some(d) = r.detail() {
                again = again.set_detail(d.to_string());
            }
            if let Some(h) = r.hint() {
                again = again.set_hint(h.to_string());
            }
            again.report(PgLogLevel::ERROR);
            unreachable!("ERROR does not return")
        })
        .execute()
}

/// Restores the worker's session and current roles when `as_session_of` ends, by return or by
/// error.
struct SessionScope {
    session_user: pg_sys::Oid,
    current_user: pg_sys::Oid,
    context: i32,
}

impl Drop for SessionScope {
    fn drop(&mut self) {
        // SAFETY: the worker connected as the bootstrap superuser, which may take any session
        // role; both roles were this worker's a moment ago.
        unsafe {
            pg_sys::SetSessionAuthorization(
                self.session_user,
                pg_sys::superuser_arg(self.session_user),
            );
            pg_sys::SetUserIdAndSecContext(self.current_user, self.context);
        }
    }
}

/// Runs `f` in the worker with `role` as the session role too (and as the current role, until
/// `f` changes it), then gives the caller's roles back. The code a table's owner attaches to its
/// table runs there as the owner in a restricted operation, and must not be taken for the
/// caller by what reads `session_user`: it counted as the caller's FHE contribution, and charged
/// the caller's privacy budget (attacker round 7). Only in a subject worker, whose session is
/// its own.
pub fn as_session_of<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let (mut current_user, mut context) = (pg_sys::InvalidOid, 0);
    // SAFETY: reads this backend's roles; the bootstrap superuser this worker connected as may
    // take any session role (`serve` did the same with the caller's).
    let _scope = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut current_user, &mut context);
        let scope = SessionScope {
            session_user: pg_sys::GetSessionUserId(),
            current_user,
            context,
        };
        pg_sys::SetSessionAuthorization(role, pg_sys::superuser_arg(role));
        pg_sys::SetUserIdAndSecContext(role, context);
        scope
    };
    f()
}

/// The report an ERROR caught with PgTryBuilder carries, whatever way it was raised.
pub fn report_of(e: &CaughtError) -> &ErrorReportWithLevel {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
        CaughtError::RustPanic { ereport, .. } => ereport,
    }
}

fn caught_report(e: &CaughtError) -> Value {
    let r = report_of(e);
    json!({
        "sqlstate": r.sql_error_code() as i32,
        "message": bounded(Some(r.message().to_string())),
        "detail": bounded(r.detail().map(str::to_string)),
        "hint": bounded(r.hint().map(str::to_string)),
    })
}

/// Replaces the job's snapshot with one taken now: what committed while the job waited for its
/// locks. Until the job's transaction writes, pgrx runs its SPI statements read-only, through
/// the snapshot `serve` took when the job started; an erasure planned through it missed a column
/// (or an inheritance child) that an owner's transaction added and committed while the erasure
/// waited for its lock on the table (attacker round 18). Only for the job itself, called where
/// the snapshot `serve` pushed is the active one.
pub fn read_from_now() {
    // SAFETY: the active snapshot is the one `serve` pushed (the job's own code pushed none at
    // this point); the one pushed in its place is popped by `serve` as before. READ COMMITTED
    // (`serve`), so GetTransactionSnapshot takes a new one.
    unsafe {
        debug_assert!(pg_sys::XactIsoLevel == pg_sys::XACT_READ_COMMITTED as i32);
        pg_sys::PopActiveSnapshot();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
}

/// The worker side: connects, takes the caller's roles, runs `job` on the request in one
/// transaction and sends the answer (or the error) with the messages raised meanwhile. If the
/// caller already gave up (the segment is gone), nothing runs.
pub fn serve(
    arg: pg_sys::Datum,
    job: impl FnOnce(Vec<u8>) -> String + std::panic::UnwindSafe + std::panic::RefUnwindSafe,
) {
    // SAFETY: `die` is Postgres's own SIGTERM handler for backends: the caller's terminate then
    // stops the job at its next interrupt check, and its transaction aborts.
    unsafe {
        pg_sys::pqsignal(libc::SIGTERM, Some(postgres_die));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
    SERVING.with(|s| s.set(true));
    let handle = arg.value() as pg_sys::dsm_handle;
    // SAFETY: `arg` is the segment handle `run` passed as the worker's argument; dsm_attach
    // returns NULL (checked) if the caller already detached and the segment is gone.
    let seg = unsafe { pg_sys::dsm_attach(handle) };
    if seg.is_null() {
        return;
    }
    // SAFETY: the segment is laid out by `run` (header, request, queue).
    let (header, request, mqh) = unsafe {
        let base = pg_sys::dsm_segment_address(seg) as *mut u8;
        let header = std::ptr::read_unaligned(base as *const Header);
        let request = std::slice::from_raw_parts(
            base.add(std::mem::size_of::<Header>()),
            header.len as usize,
        )
        .to_vec();
        let mq = base.add(layout(header.len as usize).0) as *mut pg_sys::shm_mq;
        pg_sys::shm_mq_set_sender(mq, pg_sys::MyProc);
        (
            header,
            request,
            pg_sys::shm_mq_attach(mq, seg, std::ptr::null_mut()),
        )
    };
    // As the bootstrap superuser: the caller's roles may not log in (a role reached with SET
    // ROLE) or be at their connection limit; the job takes them below.
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(header.database), None);
    // SAFETY: backend globals of this worker. Postgres calls the hook only for messages it
    // would send somewhere: with no client, that is what reaches log_min_messages.
    unsafe {
        pg_sys::log_min_messages = pg_sys::NOTICE as i32;
        pg_sys::emit_log_hook = Some(keep_message);
    }
    // READ COMMITTED whatever default_transaction_isolation says (a setting of the database or
    // of its owner reaches the worker too): `read_from_now` gives the job a snapshot taken after
    // the locks it waited for, which a REPEATABLE READ transaction never would.
    // SAFETY: a backend global of this worker, read when its transaction starts below.
    unsafe { pg_sys::DefaultXactIsoLevel = pg_sys::XACT_READ_COMMITTED as i32 };
    // SAFETY: the worker is connected (above) and has no transaction open; the calls follow
    // Postgres's own sequence for BEGIN, a statement and COMMIT, and each is pgrx's guarded
    // wrapper, so an ERROR becomes a panic that catch_others turns into Err (the transaction is
    // then aborted below). MyProc is this connected backend's own PGPROC, non-null; mqh is our
    // attached sending end of the queue in the still attached segment, and `started` outlives
    // the send. The snapshot pushed is popped before the commit.
    let outcome = PgTryBuilder::new(move || unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        // A transaction block, as after BEGIN: Citus then runs each statement on the workers
        // inside a remote transaction that commits or aborts with this one. Outside a block it
        // commits a single-shard statement at once, so an erasure that failed on a later table
        // had already deleted the subject's rows in the earlier ones.
        pg_sys::StartTransactionCommand();
        pg_sys::BeginTransactionBlock();
        pg_sys::CommitTransactionCommand();
        pg_sys::StartTransactionCommand();
        // The caller waits for this transaction in the lock table (`wait_for_transaction`).
        let mut started = TRANSACTION_TAG.to_vec();
        started.extend_from_slice(&(*pg_sys::MyProc).backendId.to_ne_bytes());
        started.extend_from_slice(&(*pg_sys::MyProc).lxid.to_ne_bytes());
        pg_sys::shm_mq_send(
            mqh,
            started.len(),
            started.as_ptr() as *const _,
            false,
            true,
        );
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        // SAFETY: the bootstrap superuser may take any session role; the caller's current role
        // (possibly a SECURITY DEFINER function's owner) is the one every check uses.
        pg_sys::SetSessionAuthorization(
            header.session_user,
            pg_sys::superuser_arg(header.session_user),
        );
        pg_sys::SetUserIdAndSecContext(header.current_user, 0);
        let answer = job(request);
        pg_sys::PopActiveSnapshot();
        // As COMMIT: ends the block, then commits.
        pg_sys::EndTransactionBlock(false);
        pg_sys::CommitTransactionCommand();
        Ok(answer)
    })
    .catch_others(|e| Err(caught_report(&e)))
    .execute();
    let (mut messages, left_out) = CAUGHT.with(|c| std::mem::take(&mut *c.borrow_mut()));
    if left_out > 0 {
        messages.push(json!({
            "level": pg_sys::WARNING, "sqlstate": 0,
            "message": format!("{left_out} more notice(s) or warning(s) raised by code of tables' owners are not shown"),
        }));
    }
    let mut message = json!({ "messages": messages });
    match outcome {
        Ok(answer) => message["answer"] = json!(answer),
        Err(error) => {
            // SAFETY: the ERROR was caught above, leaving the job's transaction (or block) to
            // be aborted, as Postgres's main loop does after an error; a guarded call that
            // needs no state of ours.
            unsafe { pg_sys::AbortOutOfAnyTransaction() };
            message["error"] = error;
        }
    }
    let bytes = serde_json::to_vec(&message).unwrap_or_default();
    // SAFETY: `mqh` is our attached sending end; a caller that left makes this return DETACHED.
    unsafe {
        pg_sys::shm_mq_send(mqh, bytes.len(), bytes.as_ptr() as *const _, false, true);
        pg_sys::dsm_detach(seg);
    }
}
