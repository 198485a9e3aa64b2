"""The gate's pytest plugin, loaded into every test run (`-p _ratchet_probe`).

One file of standard library only, on purpose and whatever its length: it is copied
into each run's private probe folder and loaded by pytest inside the sandbox, beside
code that may be hostile, so it cannot import the project's packages, and every module
it shares the run with (the channel, the replay, the canon) is one more thing to copy
and authenticate.

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

When the gate splits a full run over several processes, each one walks the whole
suite but imports only the test files the gate's plan gives it (files the plan does not
know go by a hash of their path), and reports every file it saw with its owner; the
gate checks that every process saw the same files and ran only its own. A suite
configured to spread itself over pytest-xdist's workers runs in the probe's process all
the same.

It depends on the standard library and pytest, and binds every function it writes
frames with at import, in closures, so that code under test replacing `os.write`,
`json.dumps` or anything on the probe object later cannot change what is sent. It takes
the gate's settings out of the environment at import, so the code under test cannot
read where the canaries are, or that a gate is watching.
"""

import hashlib
import importlib
import json
import operator
import os
import pathlib
import random
import sys
import zlib

import _ratchet_channel
import pytest

_TEXT_LIMIT = 4000
_FUNCTION = type(lambda: None)
_FUNCTION_STATE = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
_MISSING = object()
_FUNCTION_OF = operator.attrgetter("function")  # a pluggy HookImpl's function

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
    """(key, namespace, name, value, shadows, code) for a watched name, or None where
    this pytest lacks it.

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
                value = klass.__dict__[name]
                return (key, klass.__dict__, name, value, shadows, *_code(value))
        return None
    if name not in owner.__dict__:
        return None
    value = owner.__dict__[name]
    return (key, owner.__dict__, name, value, (), *_code(value))


def _code(value):
    """The function behind a function, method, classmethod or property, and its code
    object: replacing a function's `__code__` keeps its identity but changes what it
    does. (The wrappers' `__func__` and `fget` are read-only, so the function found now
    stays the one to look at while the wrapper is the same object.)"""
    for attribute in ("__func__", "fget"):
        value = getattr(value, attribute, value)
    code = getattr(value, "__code__", None)
    return (value, code) if code is not None else (_NO_CODE, None)


class _NoCode:
    """Stands in for the function of a watched value that has no code (a class, a
    builtin): its `__code__` is always None, like the recorded one."""

    __code__ = None


_NO_CODE = _NoCode()


def _snapshot(names):
    return [found for found in (_resolve(m, d) for m, d in names) if found is not None]


def _changed(watched):
    """The watched names whose value changed: a dictionary lookup or two each, as this
    runs for every report."""
    return [
        key
        for key, namespace, name, value, shadows, function, code in watched
        if namespace.get(name) is not value
        or function.__code__ is not code
        or (shadows and any(name in shadow for shadow in shadows))
    ]


def _same(now, then):
    """Whether a hook's dispatcher and implementations (and their functions) are the
    very objects they were: identities compared in C (`operator.is_`), once per test."""
    if now is None or now[0] is not then[0] or len(now[1]) != len(then[1]):
        return False
    return all(map(operator.is_, now[1], then[1])) and all(map(operator.is_, now[2], then[2]))


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
    """At most _TEXT_LIMIT characters: the head (what failed) and the tail (the error
    itself, last in pytest's text), with a marker where the middle was cut."""
    text = str(text or "")
    if len(text) <= _TEXT_LIMIT:
        return text
    head = _TEXT_LIMIT // 4
    return text[:head] + "\n[…]\n" + text[-(_TEXT_LIMIT - head):]


def _under(path, root):
    return bool(root) and (path == root or path.startswith(root.rstrip(os.sep) + os.sep))


def _probe_class(emit, sha256=hashlib.sha256):
    """The probe's class, closed over the frame writer (and the hash it reports the JSON
    report's digest with). Its checks are functions of this closure, not methods: code
    that replaces a method on the class cannot switch them off."""
    watched = []  # the watched names, and the probe's own functions
    tests = {}  # nodeid -> what its call will run, as collected (`_as_collected`)
    test_files = set()  # the test modules pytest collected
    guarded = set()  # ids of the collected test functions and what they wrap
    stop_on = set()  # the tests whose failure ends the session (`RATCHET_STOP`), once

    def is_test_code(function):
        """A collected test (or what it wraps), or a function defined at the top level of
        a test file or a class in one (a helper, a fixture). A function a test makes for
        itself (a lambda, a nested function) is the test's own business."""
        if id(function) in guarded:
            return True
        path = function.__code__.co_filename
        name = path.rsplit(os.sep, 1)[-1]
        in_tests = path in test_files or name == "conftest.py" or name.startswith(
            "test_") or name.endswith("_test.py")  # fmt: skip
        return in_tests and "<" not in function.__qualname__

    def audit(event, args):
        """A PEP 578 hook, installed with the probe and never removable: replacing the
        code, defaults or keyword defaults of a function of the test files, from any
        thread, at any time, is refused and reported. (Setting `__code__` is audited as
        object.__setattr__; nothing else is looked at, so every other event costs one
        comparison.)"""
        if event != "object.__setattr__" or len(args) < 2:
            return
        target, name = args[0], args[1]
        if name not in _FUNCTION_STATE or type(target) is not _FUNCTION:
            return
        if is_test_code(target):
            where = f"{target.__qualname__} ({target.__code__.co_filename})"
            emit("tamper", where=target.__qualname__,
                 problems=[f"{name} of the test code {where} was replaced at run time"])
            raise RuntimeError("the code of a test cannot be replaced while it is judged")

    sys.addaudithook(audit)

    def as_collected(item):
        """What calling `item` runs: the object pytest will call, the function behind
        it and each function it wraps, with their code and defaults, and the attribute
        of the module or class it was found under."""
        obj = getattr(item, "obj", None)
        if obj is None or not isinstance(item, pytest.Function):
            return None
        functions, seen = [], getattr(obj, "__func__", obj)
        while isinstance(seen, _FUNCTION) and len(functions) < 8:
            functions.append((seen, seen.__code__, seen.__defaults__, seen.__kwdefaults__))
            seen = getattr(seen, "__wrapped__", None)
        owner = getattr(item, "parent", None)
        owner = getattr(owner, "obj", None) if owner is not None else None
        name = getattr(item, "originalname", None) or item.name
        found = _written(owner, name)[0]
        return obj, tuple(functions), owner, name, found

    def rebound(item, collected):
        """Whether the module or class attribute a test was found under no longer holds
        the function pytest collected (bound again during the collection of a later
        module): what the file says and what runs differ."""
        obj, _functions, _owner, _name, found = collected
        return found is not _MISSING and found is not getattr(obj, "__func__", obj)

    def test_changed(item):
        """How the test about to run (or just run) differs from what was collected from
        its file, or "" when it does not."""
        then = tests.get(item.nodeid)
        if then is None:
            return ""
        obj, functions, owner, name, found = then
        if getattr(item, "obj", None) is not obj:
            return "the object pytest calls was replaced"
        for function, code, defaults, kwdefaults in functions:
            if function.__code__ is not code:
                return f"the code of {function.__qualname__} was replaced"
            if function.__defaults__ is not defaults or function.__kwdefaults__ is not kwdefaults:
                return f"the defaults of {function.__qualname__} were replaced"
        now = _written(owner, name)[0]
        if found is not _MISSING and now is not found:
            return f"{name} of {getattr(owner, '__name__', owner)} was replaced"
        return ""

    def hook_state(config):
        state = {"_inner_hookexec": getattr(config.pluginmanager, "_inner_hookexec", None)}
        for name in _HOOKS:
            caller = getattr(config.hook, name, None)
            if caller is not None:
                impls = tuple(caller.get_hookimpls())
                state[name] = (getattr(caller, "_hookexec", None), impls,
                               tuple(map(_FUNCTION_OF, impls)))  # fmt: skip
        return state

    def check(probe, where, full=False):
        """Report any change to the watched names (cheap: on every report) and, with
        `full`, to the plugins and hook implementations (once per test)."""
        problems = [f"{name} was replaced" for name in _changed(watched)]
        if full and probe.plugins is not None:
            manager = probe.config.pluginmanager
            present = manager.get_plugins()
            added = [] if set(map(id, present)) <= probe.plugins else [
                p for p in present if id(p) not in probe.plugins]  # fmt: skip
            if added:
                names = ", ".join(manager.get_name(p) or repr(p) for p in added)
                problems.append("plugins registered after collection: " + names)
            state = hook_state(probe.config)
            if state["_inner_hookexec"] is not probe.hookimpls["_inner_hookexec"]:
                problems.append("pytest's hook dispatch was wrapped")
            problems += [
                f"the implementations of {name} changed"
                for name, value in probe.hookimpls.items()
                if name != "_inner_hookexec" and not _same(state.get(name), value)
            ]
        if problems:
            emit("tamper", where=where, problems=problems)
            watched[:] = _snapshot(_WATCHED) + _own(_Probe)  # report each change once
            if full:
                probe.plugins = {id(p) for p in probe.config.pluginmanager.get_plugins()}
                probe.hookimpls = hook_state(probe.config)

    def registered_during_collection(probe):
        """Plugins that appeared while collecting other than conftest modules (the only
        thing pytest itself registers then)."""
        manager = probe.config.pluginmanager
        conftests = {id(m) for m in getattr(manager, "_conftest_plugins", ())}
        return [
            manager.get_name(plugin) or repr(plugin)
            for plugin in manager.get_plugins()
            if id(plugin) not in probe.before_collection and id(plugin) not in conftests
        ]

    class _Elsewhere(pytest.File):
        """A test file another process of a split run owns: found, so that a file named
        on the command line (a custom test command may name its files) is not a usage
        error in every process but its owner's, and never imported."""

        def collect(self):
            return []

    class _Probe:
        """The hooks. They write frames through `emit`, a variable of the enclosing
        function, never an attribute: replacing anything on the probe object does not
        change what they send."""

        def __init__(self, canary_file, canary_names, select_file, tree, shard, contexts,
                     file_map, stop_file):  # fmt: skip
            stop_on.update(_listing(stop_file))
            self.unmapped = _listing(file_map)  # tests whose files an older map holds
            self.canary_file = canary_file
            self.canary_names = canary_names  # {function name: the outcome it must have}
            self.select_file = select_file
            self.tree = tree
            self.shard = shard  # (index, count, {file: index}) or None
            self.files = {}  # in a split run: every test file seen, and its owner
            self.coverage = _coverage() if contexts else None
            self.file_map = _FileMap(tree) if file_map and tree else None
            self.canaries = {}
            self.session = None
            self.plugins = None
            self.hookimpls = None
            self.config = None
            self.before_collection = set()

        @pytest.hookimpl(tryfirst=True)
        def pytest_configure(self, config):
            self.config = config
            emit(
                "hello",
                pid=os.getpid(),
                python=sys.version.split()[0],
                pytest=pytest.__version__,
                report=str(getattr(config.option, "json_report_file", "") or ""),
            )

        @pytest.hookimpl(tryfirst=True)
        def pytest_collection(self, session):
            self.before_collection = {id(p) for p in self.config.pluginmanager.get_plugins()}

        @pytest.hookimpl(wrapper=True)
        def pytest_collect_file(self, file_path, parent):
            """In a split run, a test file another process owns is dropped before its
            module is imported: each process pays only for its own files."""
            collectors = yield
            if collectors:
                test_files.add(str(file_path))
            if self.shard is None or not collectors:
                return collectors
            index, count, plan = self.shard
            try:
                path = file_path.relative_to(parent.config.rootpath).as_posix()
            except ValueError:
                path = str(file_path)
            owner = plan.get(path, zlib.crc32(path.encode()) % count)
            self.files[path] = owner
            return collectors if owner == index else [_Elsewhere.from_parent(parent,
                                                                              path=file_path)]

        def pytest_collectreport(self, report):
            if report.failed:
                emit("collect_error", nodeid=report.nodeid, text=_clip(report.longrepr))

        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(self, session, config, items):
            if self.select_file:
                wanted = _listing(self.select_file)
                keep = [item for item in items if item.nodeid in wanted]
                drop = [item for item in items if item.nodeid not in wanted]
                if drop:
                    config.hook.pytest_deselected(items=drop)
                    items[:] = keep
            if self.shard is not None:
                index, count, _plan = self.shard
                emit("shard", index=index, count=count, files=self.files)
            if self.canary_file:
                module = pytest.Module.from_parent(session, path=pathlib.Path(self.canary_file))
                for canary in module.collect():
                    if canary.name in self.canary_names:
                        self.canaries[canary.nodeid] = self.canary_names[canary.name]
                        items.insert(random.randint(0, len(items)), canary)

        def pytest_collection_finish(self, session):
            self.session = session
            foreign = []
            for item in session.items:
                collected = as_collected(item)
                if collected is not None:
                    tests[item.nodeid] = collected
                    guarded.update(id(f[0]) for f in collected[1])
                    if ((collected[1] and not _compiled_from(collected[1][-1][0], item))
                            or rebound(item, collected)):  # fmt: skip
                        foreign.append(item.nodeid)
            if foreign:
                emit("tamper", where="collection", problems=[
                    f"{nodeid}: the function collected is not one its file defines"
                    for nodeid in foreign[:5]])  # fmt: skip
            emit(
                "collected",
                nodeids=[item.nodeid for item in session.items],
                canaries=self.canaries,
            )
            problems = []
            added = registered_during_collection(self)
            if added:
                problems.append("plugins registered during collection: " + ", ".join(added))
            problems += _rebound_imports(session.items)
            if problems:
                emit("tamper", where="collection", problems=problems)
            self.plugins = {id(p) for p in self.config.pluginmanager.get_plugins()}
            self.hookimpls = hook_state(self.config)
            check(self, "collection", full=True)

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_call(self, item):
            """The test about to run is the one compiled from its file at collection."""
            changed = test_changed(item)
            if changed:
                emit("tamper", where=item.nodeid, problems=[f"before its call: {changed}"])

        @pytest.hookimpl(wrapper=True, tryfirst=True)
        def pytest_runtest_makereport(self, item, call):
            if call.when == "call":
                changed = test_changed(item)
                if changed:
                    emit("tamper", where=item.nodeid, problems=[f"during its call: {changed}"])
            report = yield
            excinfo = call.excinfo
            if (
                excinfo is not None
                and report.outcome == "passed"
                and not hasattr(report, "wasxfail")
                and not isinstance(excinfo.value, (pytest.skip.Exception, pytest.xfail.Exception))
            ):
                emit(
                    "tamper",
                    where=item.nodeid,
                    problems=[f"the {call.when} stage raised {excinfo.typename} but was "
                              "reported as passed"],
                )
            return report

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_logreport(self, report):
            check(self, report.nodeid)
            emit("report", **_report_frame(report))
            if report.failed and report.nodeid in stop_on and self.session is not None:
                # The first stage can only reject: one failure of a test that must pass
                # says enough, and the tests after it need not run (pytest's `-x`).
                stop_on.clear()
                emit("stopped", nodeid=report.nodeid)
                self.session.shouldfail = f"{report.nodeid} failed: the gate stops here"

        @pytest.hookimpl(wrapper=True, tryfirst=True)
        def pytest_runtest_protocol(self, item, nextitem):
            """With per-test contexts asked for, coverage records which test ran each
            line (fault localisation); with the map asked for, which files of the tree
            each test's code ran in (the gate's map from source files to tests)."""
            if self.file_map is not None and item.nodeid not in self.unmapped:
                self.file_map.start()
                try:
                    return (yield)
                finally:
                    emit("covers", nodeid=item.nodeid, files=self.file_map.stop())
            if self.coverage is None:
                return (yield)
            self.coverage.switch_context(item.nodeid)
            try:
                return (yield)
            finally:
                self.coverage.switch_context("")

        def pytest_runtest_logfinish(self, nodeid, location):
            check(self, nodeid, full=True)

        @pytest.hookimpl(trylast=True)
        def pytest_sessionfinish(self, session, exitstatus):
            check(self, "sessionfinish", full=True)
            self.session = session
            emit("modules", outside=_modules_outside(self.tree))

        @pytest.hookimpl(trylast=True)
        def pytest_unconfigure(self, config):
            path = str(getattr(config.option, "json_report_file", "") or "")
            digest = ""
            if path and os.path.exists(path):
                with open(path, "rb") as handle:
                    digest = sha256(handle.read()).hexdigest()
            status = getattr(self.session, "exitstatus", None)
            emit("end", exitstatus=int(status) if status is not None else None,
                 report_sha256=digest)  # fmt: skip

    watched[:] = _snapshot(_WATCHED) + _own(_Probe)
    return _Probe


def _own(cls):
    """The probe's own hook functions, watched like pytest's (their code included)."""
    return [
        (f"_ratchet_probe:{name}", cls.__dict__, name, value, (), *_code(value))
        for name, value in vars(cls).items()
        if name.startswith("pytest_")
    ]


def _listing(path):
    """The test ids a file the gate wrote lists, one a line (none without a file)."""
    if not path:
        return set()
    with open(path, encoding="utf-8") as handle:
        return {line.rstrip("\n") for line in handle if line.strip()}


def _report_frame(report):
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
                              "message": _clip(crash.message)}  # fmt: skip
        frame["text"] = _clip(report.longreprtext)
    return frame


def _modules_outside(tree):
    """Modules loaded from outside the tree, this plugin's folder and the interpreter:
    the gate refuses the run if one of them is the user's checkout."""
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
    return sorted(outside)


def _written(owner, name):
    """The attribute `name` as the test's module or class holds it, read without calling
    anything: a class's own entry or, for a test it inherits (a unittest mixin), the
    entry of the first base class in its MRO that defines it; and the class it was
    found in (None for a module, or when it is not there)."""
    if isinstance(owner, type):
        for klass in type.__getattribute__(owner, "__mro__"):
            entry = type.__getattribute__(klass, "__dict__").get(name, _MISSING)
            if entry is not _MISSING:
                return entry, klass
        return _MISSING, None
    if hasattr(owner, "__dict__"):
        return vars(owner).get(name, _MISSING), None
    return _MISSING, None


def _compiled_from(function, item, _definitions={}):  # noqa: B006 - a cache per process
    """Whether `function` (the innermost of what a test item calls) was compiled from the
    file that defines it, where that file defines a function of its name: the item's own
    file, or for a test its class inherits, the file of the base class that defines it
    (cachetools keeps its cases in tests/__init__.py). Code built elsewhere and bound to
    a test's name before collection would otherwise be the test every later check
    compares against."""
    module = getattr(item, "module", None)
    path = getattr(module, "__file__", None)
    owner = getattr(getattr(item, "parent", None), "obj", None)
    name = getattr(item, "originalname", None) or getattr(item, "name", "")
    klass = _written(owner, name)[1]
    if klass is not None and klass is not owner:
        defining = sys.modules.get(type.__getattribute__(klass, "__module__"))
        path = getattr(defining, "__file__", None) or path
    if not path:
        return True
    code = function.__code__
    if os.path.realpath(code.co_filename) != os.path.realpath(path):
        return False
    if path not in _definitions:
        _definitions[path] = _defined(path)
    defined = _definitions[path]
    return defined is None or (code.co_name, code.co_firstlineno) in defined


def _defined(path):
    """(name, line) of every function its source defines, at its `def` and at each of its
    decorators (what `co_firstlineno` may hold); None when it cannot be read."""
    import ast

    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for line in (node.lineno, *(d.lineno for d in node.decorator_list)):
                found.add((node.name, line))
    return found


def _rebound_imports(items):
    """Names a test module imported (`from X import name`) that no longer are X.name
    once collection is done: code run while collecting (a property pytest reads, say)
    swapped what the tests call for something else."""
    problems = []
    seen = set()
    for item in items:
        module = getattr(item, "module", None)
        path = getattr(module, "__file__", None)
        if module is None or not path or path in seen:
            continue
        seen.add(path)
        for local, source, name in _from_imports(path):
            origin = sys.modules.get(source)
            if origin is None or name not in vars(origin) or local not in vars(module):
                continue
            if vars(module)[local] is not vars(origin)[name]:
                problems.append(f"{item.nodeid.split('::')[0]}: {local} is no longer "
                                f"{source}.{name}")  # fmt: skip
    return problems


def _from_imports(path):
    """(local name, module, name) for each top-level `from module import name` in the
    file that nothing else at the top level binds again."""
    import ast

    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    imported, bound = [], {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                local = alias.asname or alias.name
                imported.append((local, node.module, alias.name))
                bound[local] = bound.get(local, 0) + 1
        else:
            for target in ast.walk(node):
                if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
                    bound[target.id] = bound.get(target.id, 0) + 1
                elif isinstance(target, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                    bound[target.name] = bound.get(target.name, 0) + 1
    return [entry for entry in imported if bound[entry[0]] == 1]


class _FileMap:
    """Which files of the tree each test's code ran in: all the staged verdict's map
    needs (a change to a file selects the tests that ran it), for a fraction of the cost
    of line coverage with a context per test (3.7x a bare run on more-itertools).

    On Python 3.12 and later, a sys.monitoring tool of its own: the first start of each
    code object in a test reports its file, then that code location's event is disabled
    until the next test (`restart_events`): about the cost of a bare run. Before 3.12,
    the C profiler (cProfile, without builtins) over each test, its files read from its
    entries: about 2.2x a bare run, and the calling thread only. The code under test
    can switch either off for itself; a test the map misses only loses its place in a
    first stage, which can reject and never accept: the full suite still runs it."""

    def __init__(self, tree):
        self.root = tree.rstrip(os.sep) + os.sep
        self.seen = set()
        self.tool = None
        self.profiler = None
        monitoring = getattr(sys, "monitoring", None)
        if monitoring is None:
            return
        for tool in (3, 4, 2, 1):  # not a debugger's (0); coverage's and a profiler's last
            try:
                monitoring.use_tool_id(tool, "ratchet-map")
            except ValueError:
                continue
            self.tool = tool
            break
        if self.tool is not None:
            seen, disable = self.seen, monitoring.DISABLE

            def started(code, _offset):
                seen.add(code.co_filename)
                return disable

            monitoring.register_callback(self.tool, monitoring.events.PY_START, started)

    def start(self):
        self.seen.clear()
        if self.tool is not None:
            sys.monitoring.restart_events()
            sys.monitoring.set_events(self.tool, sys.monitoring.events.PY_START)
        else:
            import cProfile

            self.profiler = cProfile.Profile(builtins=False, subcalls=False)
            self.profiler.enable()

    def stop(self):
        """The tree's files the test's code ran in, relative to the tree."""
        if self.tool is not None:
            sys.monitoring.set_events(self.tool, 0)
            found = set(self.seen)
        else:
            self.profiler.disable()
            found = {entry.code.co_filename for entry in self.profiler.getstats()
                     if not isinstance(entry.code, str)}  # fmt: skip
            self.profiler = None
        root = self.root
        return sorted(path[len(root):] for path in found if path.startswith(root))


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


def _no_dumps():
    """Make this process non-dumpable: with CAP_SYS_PTRACE gone, no other process of the
    suite can read its memory (and the key) through ptrace or /proc/PID/mem."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
        except (OSError, AttributeError):
            pass


def _settings():
    """What the gate told this run, taken out of the environment so that the code under
    test cannot read where the canaries are, nor that a gate is watching."""
    canaries = os.environ.pop("RATCHET_CANARIES", "")
    path, _, names = canaries.partition("::")
    holds, _, breaks = names.partition("::")
    expected = {holds: "passed", breaks: "failed"} if holds and breaks else {}
    select, tree = os.environ.pop("RATCHET_SELECT", ""), os.environ.pop("RATCHET_TREE", "")
    shard = _shard(os.environ.pop("RATCHET_SHARD", ""))
    contexts = os.environ.pop("RATCHET_CONTEXTS", "") == "1"
    file_map, stop = os.environ.pop("RATCHET_MAP", ""), os.environ.pop("RATCHET_STOP", "")
    return path, expected, select, tree, shard, contexts, file_map, stop


def _coverage():
    """The coverage measurement this run is under (`coverage run`), or None."""
    try:
        import coverage
    except ImportError:
        return None
    return coverage.Coverage.current()


def _shard(setting):
    """`index/count/plan file` -> (index, count, {test file: index}), or None."""
    if not setting:
        return None
    index, count, plan_file = setting.split("/", 2)
    with open(plan_file, encoding="utf-8") as handle:
        plan = json.load(handle)
    return int(index), int(count), plan


def _install():
    emit = _ratchet_channel.connect()
    if emit is None:
        return None, None
    _no_dumps()
    probe = _probe_class(emit)(*_settings())
    record = os.environ.pop("RATCHET_RECORD", "")
    if record:
        _record(emit, json.loads(record))
    return probe, _Counts(probe)


# CO_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR: a call event
# for each resume, the yielded values as "results": not a call the replay can repeat.
_SUSPENDS = 0x20 | 0x80 | 0x100 | 0x200


def _record(emit, spec, settrace=sys.settrace, thread_settrace=None, getenv=os.environ.get):
    """Record the calls the suite makes into the functions a proposal changed (the
    gate's behavioural check): for each call of a target, its arguments as pickled at
    the call, before the body ran, and the canonical form of its result or of what it
    raised, sent as a frame. A trace function only for the `call` event of other
    frames: no line events anywhere, and a local one, for return and exception, only
    in the targets' frames."""
    import dis
    import threading

    from _ratchet_canon import arguments, canon, pack_args, raised

    targets = {(path, name) for path, name in spec["targets"]}
    limit = int(spec.get("limit", 50))
    counts = {}
    passed_over = set()
    returning = {dis.opmap[n] for n in ("RETURN_VALUE", "RETURN_CONST") if n in dis.opmap}

    def trace(frame, event, _arg):
        code = frame.f_code
        key = (code.co_filename, code.co_qualname)
        if event != "call" or key not in targets:
            return None
        test = (getenv("PYTEST_CURRENT_TEST") or "").split(" ")[0]
        # Not replayed, but said once per test: which tests reach which functions must
        # not depend on the order they ran in (a goal test after the limit).
        why = ""
        if code.co_flags & _SUSPENDS:
            why = "a generator or coroutine"
        elif counts.get(key, 0) >= limit:
            why = "beyond the recording limit"
        if why:
            if (key, test) not in passed_over:
                passed_over.add((key, test))
                emit("call", file=key[0], qualname=key[1], args="", test=test, skipped=why)
            return None
        counts[key] = counts.get(key, 0) + 1
        args, kwargs = arguments(frame)
        module = frame.f_globals.get("__name__")
        record = {"file": key[0], "qualname": key[1], "args": pack_args(args, kwargs),
                  "test": test, "module": module if type(module) is str else ""}  # fmt: skip
        frame.f_trace_lines = False
        state = {}

        def local(frame, event, arg):
            if event == "exception":
                state["raised"] = arg[1]
            elif event == "return":
                normal = arg is not None or frame.f_code.co_code[frame.f_lasti] in returning
                emit("call", **record, result=canon(arg) if normal else raised(state.get(
                    "raised")))  # fmt: skip
            return local

        return local

    settrace(trace)
    (thread_settrace or threading.settrace)(trace)


_probe, _counts = _install()


def pytest_configure(config):
    # A suite whose configuration asks pytest-xdist to spread its tests over worker
    # processes (`-n` in addopts) runs in this process all the same: this probe vouches
    # only for the process it is loaded in, and the gate splits a run itself
    # (`evolution.run.shards`). xdist's own pytest_configure (trylast) comes after this one
    # and starts its workers only when `dist` is not "no".
    if getattr(config.option, "dist", "no") != "no":
        config.option.dist = "no"
    # Registered now, pytest_configure being historic, each gets its own call at once.
    if _probe is not None:
        config.pluginmanager.register(_probe, "ratchet-probe")
        config.pluginmanager.register(_counts, "ratchet-counts")
