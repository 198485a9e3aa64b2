"""The gate's pytest plugin, loaded into every test run (`-p _ratchet_probe`).

The verdict is computed from what this plugin sends, as it happens, over a pipe the gate
handed to the run: one frame per collected test list, per test report (setup, call,
teardown, every subtest) and per collection error, then an end-of-session record. Each
frame carries an HMAC chained over every earlier frame, keyed by a secret the gate sends
on a second descriptor that this module reads and closes at import, before any code
under test runs. Frames cannot be taken back, a frame written by anyone without the key
breaks the chain, and a run that never sends the end record is invalid.

It also watches the machinery the reports go through: the functions that build reports
and run the test protocol, pytest's hook dispatch, and the registered plugins from the
start of collection (a conftest module is the only newcomer allowed while collecting;
nothing may be registered after). A change is reported as tampering. It injects the gate's two
canary tests (one must pass, one must fail) at random places among the collected items,
and lists the modules loaded from outside the tested tree and the interpreter, so the
gate can refuse a run that imported the user's checkout.

It depends on the standard library and pytest, and binds every function it needs at
import, so that code under test replacing `os.write` or `json.dumps` later cannot reach
the channel.
"""

import hashlib
import hmac
import importlib
import json
import os
import pathlib
import random
import sys

import pytest

_write = os.write
_dumps = json.dumps
_hmac_new = hmac.new
_sha256 = hashlib.sha256
_TEXT_LIMIT = 4000

# (module, dotted attribute): what a report passes through between a test and a frame.
_WATCHED = (
    # The names modules look their collaborators up by, not only the functions:
    ("_pytest.runner", "TestReport"),
    ("_pytest.runner", "CallInfo"),
    ("_pytest.runner", "call_and_report"),
    ("_pytest.reports", "TestReport"),
    ("_pytest.python", "Function"),
    ("_pytest.unittest", "TestCaseFunction"),
    ("_pytest.reports", "TestReport.from_item_and_call"),
    ("_pytest.reports", "TestReport.__init__"),
    ("_pytest.reports", "BaseReport.passed"),
    ("_pytest.reports", "BaseReport.failed"),
    ("_pytest.reports", "BaseReport.skipped"),
    ("_pytest.runner", "pytest_runtest_protocol"),
    ("_pytest.runner", "runtestprotocol"),
    ("_pytest.runner", "call_and_report"),
    ("_pytest.runner", "call_runtest_hook"),
    ("_pytest.runner", "CallInfo.from_call"),
    ("_pytest.runner", "CallInfo.__init__"),
    ("_pytest.runner", "pytest_runtest_makereport"),
    ("_pytest.runner", "pytest_runtest_call"),
    ("_pytest.runner", "SetupState.setup"),
    ("_pytest.runner", "SetupState.teardown_exact"),
    ("_pytest.python", "Function.runtest"),
    ("_pytest.python", "pytest_pyfunc_call"),
    ("_pytest.skipping", "pytest_runtest_makereport"),
    ("_pytest.skipping", "pytest_runtest_call"),
    ("_pytest.unittest", "TestCaseFunction.runtest"),
    ("_pytest.unittest", "TestCaseFunction.addFailure"),
    ("_pytest.unittest", "TestCaseFunction.addError"),
    ("_pytest.unittest", "TestCaseFunction.addSubTest"),
    ("_pytest.unittest", "pytest_runtest_makereport"),
    ("_pytest.subtests", "_SubTestContextManager.__exit__"),
    ("_pytest.subtests", "SubtestReport._new"),
    ("_pytest.main", "Session.pytest_runtest_logreport"),
    ("_pytest.main", "pytest_runtestloop"),
    ("_pytest.outcomes", "fail"),
    ("_pytest.outcomes", "skip"),
    ("_pytest.outcomes", "xfail"),
    ("_pytest.outcomes", "exit"),
    ("pluggy._callers", "_multicall"),
    ("pluggy._hooks", "HookCaller.__call__"),
    ("pluggy._hooks", "HookCaller.call_extra"),
    ("pluggy._manager", "PluginManager._hookexec"),
    ("pluggy._manager", "PluginManager.register"),
    ("unittest.case", "TestCase.run"),
    ("unittest.case", "TestCase.subTest"),
    ("unittest.case", "TestCase.fail"),
    ("unittest.case", "TestCase.assertEqual"),
    ("unittest.case", "TestCase.assertTrue"),
    ("unittest.case", "TestCase.assertFalse"),
    ("unittest.case", "TestCase.assertIn"),
    ("unittest.case", "TestCase.assertRaises"),
    ("unittest.case", "TestCase._getAssertEqualityFunc"),
    ("unittest.case", "_Outcome.testPartExecutor"),
    ("pytest_jsonreport.plugin", "JSONReport.pytest_runtest_logreport"),
    ("pytest_jsonreport.plugin", "JSONReport.pytest_sessionfinish"),
    ("pytest_jsonreport.plugin", "JSONReport.save_report"),
    ("pytest_jsonreport.serialize", "make_teststage"),
    ("pytest_jsonreport.serialize", "make_report"),
)
# Hooks whose registered implementations must not change once collection is done.
_HOOKS = (
    "pytest_runtest_protocol", "pytest_runtest_makereport", "pytest_runtest_logreport",
    "pytest_runtest_setup", "pytest_runtest_call", "pytest_runtest_teardown",
    "pytest_pyfunc_call", "pytest_report_teststatus", "pytest_sessionfinish",
    "pytest_runtestloop", "pytest_json_runtest_stage", "pytest_json_modifyreport",
)  # fmt: skip


def _resolve(module_name, dotted):
    """(key, namespace, name, value, shadows) for a watched name, or None where this
    pytest lacks it.

    `namespace` is the live `__dict__` of the module or class that defines the name;
    for a class attribute `shadows` are the live dicts of the subclasses in the MRO
    before it, so that shadowing the name in a subclass counts as a change too. They
    are the objects pytest's own code uses: replacing a module in sys.modules later
    does not hide a change to them.
    """
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None
    owner = module
    parts = dotted.split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    name = parts[-1]
    key = f"{module_name}:{dotted}"
    if isinstance(owner, type):
        for depth, klass in enumerate(owner.__mro__):
            if name in klass.__dict__:
                shadows = tuple(k.__dict__ for k in owner.__mro__[:depth])
                return key, klass.__dict__, name, klass.__dict__[name], shadows
        return None
    if name not in owner.__dict__:
        return None
    return key, owner.__dict__, name, owner.__dict__[name], ()


def _snapshot(names):
    return [found for found in (_resolve(m, d) for m, d in names) if found is not None]


def _changed(watched):
    """The watched names whose value changed: a dictionary lookup or two each, as this
    runs for every report."""
    changed = []
    for key, namespace, name, value, shadows in watched:
        if namespace.get(name) is not value:
            changed.append(key)
        else:
            for shadow in shadows:
                if name in shadow:
                    changed.append(key)
                    break
    return changed


def _same(now, then):
    """Whether a hook's dispatcher and implementations (and their functions) are the
    very objects they were."""
    if now is None or now[0] is not then[0] or len(now[1]) != len(then[1]):
        return False
    return all(a[0] is b[0] and a[1] is b[1] for a, b in zip(now[1], then[1], strict=True))


def _describe(context):
    parts = []
    msg = getattr(context, "msg", None)
    if msg is not None:
        parts.append(f"[{msg}]")
    kwargs = getattr(context, "kwargs", None) or {}
    if kwargs:
        parts.append("(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")")
    return " ".join(parts) or "(<subtest>)"


def _clip(text):
    text = str(text or "")
    return text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT] + "\n[…]"


def _under(path, root):
    return bool(root) and (path == root or path.startswith(root.rstrip(os.sep) + os.sep))


class _Probe:
    """The hooks; built by `_connect`, which holds the key in a closure only."""

    def __init__(self, emit, canary_file, select_file):
        self.emit = emit
        self.canary_file = canary_file
        self.select_file = select_file
        self.watched = _snapshot(_WATCHED)
        self.canaries = {}
        self.session = None
        self.plugins = None
        self.hookimpls = None
        self.config = None
        self.before_collection = set()

    # -- integrity -----------------------------------------------------------------

    def _hook_state(self, config):
        state = {}
        manager = config.pluginmanager
        state["_inner_hookexec"] = getattr(manager, "_inner_hookexec", None)
        for name in _HOOKS:
            caller = getattr(config.hook, name, None)
            if caller is None:
                continue
            impls = tuple((impl, impl.function) for impl in caller.get_hookimpls())
            state[name] = (getattr(caller, "_hookexec", None), impls)
        return state

    def check(self, where, full=False):
        """Report any change to the watched names (cheap: on every report) and, with
        `full`, to the plugins and hook implementations (once per test)."""
        problems = [f"{name} was replaced" for name in _changed(self.watched)]
        if full and self.plugins is not None:
            manager = self.config.pluginmanager
            added = [p for p in manager.get_plugins() if id(p) not in self.plugins]
            if added:
                names = ", ".join(manager.get_name(p) or repr(p) for p in added)
                problems.append("plugins registered after collection: " + names)
            state = self._hook_state(self.config)
            if state["_inner_hookexec"] is not self.hookimpls["_inner_hookexec"]:
                problems.append("pytest's hook dispatch was wrapped")
            problems += [
                f"the implementations of {name} changed"
                for name, value in self.hookimpls.items()
                if name != "_inner_hookexec" and not _same(state.get(name), value)
            ]
        if problems:
            self.emit("tamper", where=where, problems=problems)
            self.watched = _snapshot(_WATCHED)  # report each change once
            if full:
                self.plugins = {id(p) for p in self.config.pluginmanager.get_plugins()}
                self.hookimpls = self._hook_state(self.config)

    # -- hooks -----------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config):
        self.config = config
        self.emit(
            "hello",
            pid=os.getpid(),
            python=sys.version.split()[0],
            pytest=pytest.__version__,
            report=str(getattr(config.option, "json_report_file", "") or ""),
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session):
        self.before_collection = {id(p) for p in self.config.pluginmanager.get_plugins()}

    def _registered_during_collection(self):
        """Plugins that appeared while collecting and are not conftest modules (nor
        plugin modules installed outside the tested tree that a conftest asked for)."""
        manager = self.config.pluginmanager
        conftests = {id(m) for m in getattr(manager, "_conftest_plugins", ())}
        tree = os.path.realpath(os.environ.get("RATCHET_TREE", "") or "/nonexistent")
        suspicious = []
        for plugin in manager.get_plugins():
            if id(plugin) in self.before_collection or id(plugin) in conftests:
                continue
            path = getattr(plugin, "__file__", None) if isinstance(plugin, type(os)) else None
            if path and not _under(os.path.realpath(path), tree):
                continue
            suspicious.append(manager.get_name(plugin) or repr(plugin))
        return suspicious

    def pytest_collectreport(self, report):
        if report.failed:
            self.emit("collect_error", nodeid=report.nodeid, text=_clip(report.longrepr))

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        if self.select_file:
            with open(self.select_file, encoding="utf-8") as handle:
                wanted = {line.rstrip("\n") for line in handle if line.strip()}
            keep = [item for item in items if item.nodeid in wanted]
            drop = [item for item in items if item.nodeid not in wanted]
            if drop:
                config.hook.pytest_deselected(items=drop)
                items[:] = keep
        if self.canary_file:
            module = pytest.Module.from_parent(session, path=pathlib.Path(self.canary_file))
            for canary in module.collect():
                expected = "passed" if canary.name.startswith("test_holds") else "failed"
                self.canaries[canary.nodeid] = expected
                items.insert(random.randint(0, len(items)), canary)

    def pytest_collection_finish(self, session):
        self.session = session
        self.emit(
            "collected",
            nodeids=[item.nodeid for item in session.items],
            canaries=self.canaries,
        )
        added = self._registered_during_collection()
        if added:
            self.emit("tamper", where="collection",
                      problems=["plugins registered during collection: " + ", ".join(added)])
        self.plugins = {id(p) for p in self.config.pluginmanager.get_plugins()}
        self.hookimpls = self._hook_state(self.config)
        self.check("collection", full=True)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        excinfo = call.excinfo
        if (
            excinfo is not None
            and report.outcome == "passed"
            and not hasattr(report, "wasxfail")
            and not isinstance(excinfo.value, (pytest.skip.Exception, pytest.xfail.Exception))
        ):
            self.emit(
                "tamper",
                where=item.nodeid,
                problems=[f"the {call.when} stage raised {excinfo.typename} but was "
                          "reported as passed"],
            )
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report):
        self.check(report.nodeid)
        frame = {
            "nodeid": report.nodeid,
            "when": report.when,
            "outcome": report.outcome,
            "duration": round(float(getattr(report, "duration", 0.0) or 0.0), 6),
        }
        if hasattr(report, "wasxfail"):
            frame["wasxfail"] = str(report.wasxfail)
        context = getattr(report, "context", None)
        if context is not None and hasattr(context, "kwargs"):
            frame["subtest"] = _describe(context)
        if report.outcome != "passed":
            crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
            if crash is not None:
                frame["crash"] = {"path": str(crash.path), "lineno": crash.lineno,
                                  "message": _clip(crash.message)}
            frame["text"] = _clip(report.longreprtext)
        self.emit("report", **frame)

    def pytest_runtest_logfinish(self, nodeid, location):
        self.check(nodeid, full=True)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        self.check("sessionfinish", full=True)
        self.session = session
        tree = os.environ.get("RATCHET_TREE", "")
        probe_dir = os.path.dirname(os.path.abspath(__file__))
        allowed = [os.path.realpath(p) for p in (tree, probe_dir, sys.prefix, sys.base_prefix,
                                                 sys.exec_prefix, sys.base_exec_prefix) if p]
        outside = []
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            if path:
                real = os.path.realpath(path)
                if not any(_under(real, root) for root in allowed):
                    outside.append([name, real])
        self.emit("modules", outside=sorted(outside))

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config):
        path = str(getattr(config.option, "json_report_file", "") or "")
        digest = ""
        if path and os.path.exists(path):
            with open(path, "rb") as handle:
                digest = _sha256(handle.read()).hexdigest()
        status = getattr(self.session, "exitstatus", None)
        self.emit("end", exitstatus=int(status) if status is not None else None,
                  report_sha256=digest)


class _Counts:
    """Keeps the failing canary out of pytest's own counts: `-x`/`--maxfail` must not
    stop on it, and the exit status must reflect the suite's own tests."""

    def __init__(self, probe):
        self.probe = probe

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report):
        session = self.probe.session
        if (
            session is not None
            and report.failed
            and self.probe.canaries.get(report.nodeid) == "failed"
        ):
            session.testsfailed -= 1
            maxfail = session.config.getvalue("maxfail")
            if session.shouldfail and (not maxfail or session.testsfailed < maxfail):
                session.shouldfail = False


def _connect():
    """Read the key, close its descriptor, and return the frame writer (or None when the
    gate did not start this run, e.g. a person running pytest with the plugin)."""
    spec = os.environ.pop("RATCHET_CHANNEL", "")
    if not spec:
        return None
    out_fd, key_fd = (int(part) for part in spec.split(","))
    key = b""
    while len(key) < 32:
        chunk = os.read(key_fd, 32 - len(key))
        if not chunk:
            break
        key += chunk
    os.close(key_fd)
    os.set_inheritable(out_fd, False)
    state = {"mac": b"", "seq": 0}

    def emit(kind, **fields):
        state["seq"] += 1
        body = _dumps({"seq": state["seq"], "kind": kind, **fields}, default=str,
                      separators=(",", ":")).encode()
        mac = _hmac_new(key, state["mac"] + body, "sha256").hexdigest()
        state["mac"] = bytes.fromhex(mac)
        data = mac.encode() + b" " + body + b"\n"
        while data:
            data = data[_write(out_fd, data):]

    return emit


def _no_dumps():
    """Make this process non-dumpable: with CAP_SYS_PTRACE gone, no other process of the
    suite can read its memory (and the key) through ptrace or /proc/PID/mem."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
        except (OSError, AttributeError):
            pass


_emit = _connect()
if _emit is not None:
    _no_dumps()
    _probe = _Probe(
        _emit, os.environ.get("RATCHET_CANARIES", ""), os.environ.get("RATCHET_SELECT", "")
    )
    _counts = _Counts(_probe)
    del _emit


def pytest_configure(config):
    # Registered now, pytest_configure being historic, each gets its own call at once.
    if "_probe" in globals():
        config.pluginmanager.register(_probe, "ratchet-probe")
        config.pluginmanager.register(_counts, "ratchet-counts")
