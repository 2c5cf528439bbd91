"""The supervisor: the twistd process of ``--workers N`` (N > 1).

It binds every proxy listener once and hands the sockets to N worker processes (the same
python running ``twistd revproxy`` with the same arguments plus ``--worker SPEC``); it serves
the admin listener itself (answers gathered from every worker: ``revproxy.workers.fanout``)
and the demo backends when the config has them; it accepts no client connection itself.

- A worker that exits is restarted after the back-off of ``RestartPolicy``.
- SIGHUP: the new config is checked exactly as ``--check`` does (by running it), and a
  change of listeners is refused (the sockets are bound once); a good config is then
  signalled to every worker (each reloads as a single process does); a bad one reaches no
  worker and the reason is logged.
- SIGUSR1 is passed to every worker (each reopens its log files).
- SIGTERM (twistd stops the service): every worker gets SIGTERM and drains as a single process
  does; the supervisor exits when they are gone, or kills what is left after
  ``shutdown_timeout`` plus a grace period.
- Each worker watches its stdin, a pipe from the supervisor: a supervisor that dies (even by
  SIGKILL) makes its workers stop gracefully rather than linger holding the sockets.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from revproxy.config.errors import ConfigError
from revproxy.server.listeners import ListenError
from revproxy.tls.ticketkeys import new_secret
from revproxy.workers.backoff import RestartPolicy
from revproxy.workers.process import WorkerProcess, describe_exit
from revproxy.workers.sockets import SharedSockets
from revproxy.workers.spec import WorkerSpec, admin_endpoint, child_fds, socket_path, write_spec

log = Logger(namespace="revproxy.workers")

TWISTD = "from twisted.scripts.twistd import run; run()"
KILL_GRACE = 5.0  # after shutdown_timeout: a worker still there is killed
RUN_DIR_PREFIX = "revproxy-workers-"


def remove_stale_run_dirs(parent, alive=None):
    """Remove the runtime directories in ``parent`` that a supervisor killed without its
    clean-up left behind: ours (same owner), whose worker spec names a supervisor pid that
    no longer runs (``alive(pid)``, default: ``os.kill(pid, 0)``). Returns how many."""
    alive = alive or _alive
    removed = 0
    try:
        names = os.listdir(parent)
    except OSError:
        return 0
    for name in names:
        path = os.path.join(parent, name)
        if not name.startswith(RUN_DIR_PREFIX) or not os.path.isdir(path):
            continue
        try:
            if os.stat(path).st_uid != os.getuid():
                continue
            from revproxy.workers.spec import read_spec

            owner = read_spec(os.path.join(path, "worker-0.json")).supervisor
        except (OSError, ValueError):
            continue  # not one of ours, or still being written: leave it
        if owner != os.getpid() and not alive(owner):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (another user's): not ours to judge
    return True


class Slot:
    """One worker position: its restart policy, its process (None while down)."""

    def __init__(self, index, policy):
        self.index = index
        self.policy = policy
        self.process = None  # the IProcessTransport while it runs
        self.pid = None
        self.started_at = None
        self.pending = None  # the DelayedCall of a restart

    def info(self):
        return {"index": self.index, "pid": self.pid, "running": self.process is not None,
                "restarts": self.policy.restarts, "started": self.started_at}


class Supervisor(service.Service):
    """``count`` workers for ``config``; ``args`` are the revproxy arguments the workers get
    (the supervisor's own, as given); ``load()`` re-reads the config (for SIGHUP's listener
    check); ``wanted_sockets(config)`` -> ``{(role, description): BindSpec}``; ``sites(self,
    config)`` -> ``[(role, description, factory, endpoint)]`` the supervisor listens on itself
    (admin, demo)."""

    def __init__(self, reactor, config, load, args, count, wanted_sockets, sites,
                 python=sys.executable, policy=RestartPolicy, env=None, run_dir=None,
                 install_signals=True):
        from revproxy.server.listeners import ListenerSet

        self._reactor = self.reactor = reactor
        self.config = config
        self._load = load
        self._args = list(args)
        self._wanted_sockets = wanted_sockets
        self._sites = sites
        self._python = python
        self._env = dict(os.environ if env is None else env)
        self._run_dir_parent = run_dir
        self.slots = [Slot(i, policy()) for i in range(count)]
        self.sockets = SharedSockets()
        self._listeners = ListenerSet(reactor)
        self.run_dir = None
        self.signals = None  # revproxy.server.signals.SignalHandlers
        self._install_signals = install_signals  # False in unit tests: not the test process'
        self._privileged = False
        self._stopping = False
        self._all_gone = None  # Deferred while stopping
        self._checking = defer.succeed(None)  # reload checks run one at a time
        self.ticket_secret = new_secret()  # every worker's TLS ticket keys (tls.ticketkeys)

    # -- starting --------------------------------------------------------------------------------
    def privilegedStartService(self):
        service.Service.privilegedStartService(self)
        self._privileged = True
        if self._install_signals:
            from revproxy.server.signals import SignalHandlers

            self.signals = SignalHandlers(self._reactor, {signal.SIGHUP: self.reload,
                                                          signal.SIGUSR1: self.reopen_logs})
            self.signals.install()  # before binding: SIGHUP's default action would kill us
        try:
            self.sockets.bind_all(self._wanted_sockets(self.config))
            wanted = {(role, description): (description, endpoint, factory, ", " + role)
                      for role, description, factory, endpoint
                      in self._sites(self, self.config)}
            self._listeners.adopt(self._listeners.open(wanted))
        except (ListenError, ValueError, ConfigError) as e:
            self.sockets.close()
            log.critical("{e}", e=str(e))
            raise SystemExit(1)
        for (role, description), sock in self.sockets.sockets.items():
            log.info("bound {addr} ({desc}) for {n} workers", addr=sock.getsockname(),
                     desc=description, n=len(self.slots))

    def startService(self):
        service.Service.startService(self)
        if not self._privileged:
            self.privilegedStartService()  # started without it (tests)
        # after twistd dropped privileges: the workers' admin sockets are created in it
        parent = self._run_dir_parent or tempfile.gettempdir()
        removed = remove_stale_run_dirs(parent)
        if removed:
            log.info("removed {n} runtime directories of supervisors that are gone", n=removed)
        self.run_dir = tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir=parent)
        for slot in self.slots:
            self._start(slot)

    def _start(self, slot):
        slot.pending = None
        if self._stopping:
            return
        mapping, inherited = child_fds([(key, fd, family) for key, (fd, family)
                                        in self.sockets.fds().items()])
        admin = admin_endpoint(self.run_dir, slot.index)
        try:  # a killed worker left its admin socket file behind
            os.unlink(socket_path(admin))
        except OSError:
            pass
        spec_path = os.path.join(self.run_dir, "worker-%d.json" % slot.index)
        write_spec(spec_path, WorkerSpec(slot.index, os.getpid(), admin, tuple(inherited),
                                           self.ticket_secret))
        argv = [self._python, "-c", TWISTD, "--nodaemon", "--pidfile=", "revproxy"] + \
            self._args + ["--worker", spec_path]
        proc = WorkerProcess(slot.index, self._ended)
        try:
            slot.process = self._reactor.spawnProcess(proc, self._python, argv,
                                                      env=self._env, childFDs=mapping)
        except Exception as e:  # out of processes or descriptors: try again later
            delay = slot.policy.exited(self._reactor.seconds())
            log.error("worker {index} could not start: {e}; trying again in {delay:g}s",
                      index=slot.index, e=e, delay=delay)
            slot.pending = self._reactor.callLater(delay, self._start, slot)
            return
        slot.pid = slot.process.pid
        slot.started_at = self._reactor.seconds()
        slot.policy.started(slot.started_at)
        log.info("worker {index} started (pid {pid})", index=slot.index, pid=slot.pid)

    def _ended(self, index, pid, value):
        slot = self.slots[index]
        slot.process = None
        how = describe_exit(value)
        if self._stopping:
            log.info("worker {index} (pid {pid}) stopped: {how}", index=index, pid=pid, how=how)
            if self._all_gone is not None and not self.running_slots():
                self._all_gone.callback(None)
            return
        delay = slot.policy.exited(self._reactor.seconds())
        log.warn("worker {index} (pid {pid}) exited: {how}; restarting it in {delay:g}s",
                 index=index, pid=pid, how=how, delay=delay)
        slot.pending = self._reactor.callLater(delay, self._start, slot)

    def running_slots(self):
        return [slot for slot in self.slots if slot.process is not None]

    def worker_sockets(self):
        """``[(slot info, admin socket path or None)]`` for every slot, in order."""
        return [(slot.info(), socket_path(admin_endpoint(self.run_dir, slot.index))
                 if slot.process is not None else None) for slot in self.slots]

    # -- signals ---------------------------------------------------------------------------------
    def signal_workers(self, name):
        for slot in self.running_slots():
            try:
                slot.process.signalProcess(name)
            except Exception as e:  # it just exited: processEnded follows
                log.info("worker {index}: cannot send {sig}: {e}", index=slot.index, sig=name,
                         e=e)

    def reopen_logs(self):
        self.signal_workers("USR1")

    def reload(self):
        """SIGHUP: check the config (``check_reload``); signal the workers when it passes.
        A Deferred firing with ``(accepted, reason)``."""
        d = self.check_reload()

        def checked(outcome):
            accepted, reason = outcome
            if accepted:
                log.info("reload: the configuration checks out; signalling {n} workers",
                         n=len(self.running_slots()))
                self.signal_workers("HUP")
            return outcome

        return d.addCallback(checked)

    def check_reload(self):
        """A Deferred of ``(accepted, reason)``: the config as ``--check`` sees it (run as a
        process with the supervisor's arguments), then no change of what the supervisor
        binds. A refusal is logged; nothing is signalled here."""
        outcome = defer.Deferred()

        def run(_):
            d = defer.maybeDeferred(self._run_check).addCallback(self._after_check)
            d.addErrback(lambda f: self._refused("the check did not run: %s"
                                                 % f.getErrorMessage()))
            d.chainDeferred(outcome)
            return d  # the next check waits for this one

        self._checking.addBoth(run)
        return outcome

    def _run_check(self):
        from revproxy.workers.validate import CheckProcess

        check = CheckProcess()
        argv = [self._python, "-c", TWISTD, "revproxy"] + self._args + ["--check"]
        self._reactor.spawnProcess(check, self._python, argv, env=self._env)
        return check.ended

    def _after_check(self, result):
        from revproxy.workers.validate import binding_change

        code, output = result
        if code != 0:
            reason = output.strip().splitlines()[-1] if output.strip() else "exit %s" % code
            return self._refused(reason)
        try:
            config = self._load()
        except Exception as e:  # it passed --check a moment ago: changed since
            return self._refused(str(e))
        change = binding_change(self.config, config)
        if change:
            return self._refused(change)
        if config.server.workers != self.config.server.workers:
            log.warn("reload: [server] workers changed to {n}: takes effect at the next "
                     "start", n=config.server.workers)
        self.config = config  # shutdown_timeout and the next reload's comparison follow it
        return True, None

    @staticmethod
    def _refused(reason):
        log.error("reload refused: {why}; no worker was signalled, the running configuration "
                  "stays", why=reason)
        return False, reason

    # -- stopping --------------------------------------------------------------------------------
    def stopService(self):
        service.Service.stopService(self)
        self._stopping = True
        if self.signals is not None:
            self.signals.uninstall()
        for slot in self.slots:
            if slot.pending is not None and slot.pending.active():
                slot.pending.cancel()
            slot.pending = None
        self.sockets.close()  # the workers hold their own copies while they drain
        running = self.running_slots()
        log.info("stopping {n} workers", n=len(running))
        self._all_gone = defer.Deferred()
        if not running:
            self._all_gone.callback(None)
        self.signal_workers("TERM")
        limit = self.config.server.shutdown_timeout + KILL_GRACE
        deadline = self._reactor.callLater(limit, self._kill_stragglers, limit)

        def done(_):
            if deadline.active():
                deadline.cancel()
            closing = self._listeners.close_all()
            if self.run_dir is not None:
                shutil.rmtree(self.run_dir, ignore_errors=True)
            return defer.gatherResults(closing, consumeErrors=True)

        return self._all_gone.addCallback(done)

    def _kill_stragglers(self, limit):
        for slot in self.running_slots():
            log.warn("worker {index} (pid {pid}) still running {t:g}s after SIGTERM: killed",
                     index=slot.index, pid=slot.pid, t=limit)
        self.signal_workers("KILL")
