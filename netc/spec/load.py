"""Reading a spec file: bytes -> YAML -> pydantic Spec -> imports resolved -> variables bound."""
from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from netc.errors import Collector, Loc, NetcError, clip, did_you_mean, error, listing
from netc.spec.budget import work_budget
from netc.spec.input_shape import WithNetworkInput
from netc.expr import substitute
from netc.spec.model import Import, Node, Residual, Spec, Template
from netc.spec.validate import diagnostics
from netc.spec.yamlload import LocDict, key_loc, load_yaml, value_loc

MAX_FILE_BYTES = 8 * 2**20
MAX_IMPORT_DEPTH = 16


def _model_at(path: tuple):
    """The language model that validates the value at a pydantic error path (for hints)."""
    model = Spec
    strs = [p for p in path if isinstance(p, str)]
    if not path:
        return Spec
    last = path[-1]
    if isinstance(last, int):
        parent = next((p for p in reversed(path) if isinstance(p, str)), None)
        return {"layers": Node, "seq": Node, "concat": Node, "imports": Import}.get(parent, model)
    if last in ("body", "shortcut", "then", "side", "else"):
        return Node
    if last == "residual":
        return Residual
    if len(strs) >= 2 and strs[-2] == "templates" and path[-2] == "templates":
        return Template
    return model


def _known_keys(path: tuple):
    model = _model_at(path)
    return [f.alias or name for name, f in model.model_fields.items()]


def _too_big(size: str, file: str, max_bytes: int):
    return error("limit", f"spec file is {size} bytes; the limit is {max_bytes:,}", Loc(file, 1, 1),
                 "the limit is a setting (--max-file-bytes)")


def check_text_size(text: str, file: str, max_bytes: int = MAX_FILE_BYTES) -> None:
    if len(text) > max_bytes or (4 * len(text) > max_bytes and len(text.encode("utf-8", "replace")) > max_bytes):
        raise _too_big(f"more than {max_bytes:,}", file, max_bytes)


def read_text(path: str | os.PathLike, shown: str | None = None, max_bytes: int = MAX_FILE_BYTES) -> tuple[str, str]:
    """Read a spec file as UTF-8 text, with clean errors for missing, huge or binary files.

    At most `max_bytes` + 1 bytes are read, whatever the file claims to be (a FIFO or /dev/zero
    has no size), so a hostile path cannot exhaust memory.
    """
    shown = shown or str(path)
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
        if stat.S_ISDIR(mode):
            raise error("io", f"'{shown}' is a directory, not a spec file", Loc(shown))
        if not stat.S_ISREG(mode):
            # opening a FIFO without a writer blocks forever; a device may never end
            raise error("io", f"'{shown}' is not a regular file", Loc(shown), "give the path of a spec file")
        size = os.stat(p).st_size  # (stat again: the check above may have followed a symlink swap; cheap)
        if size > max_bytes:
            raise _too_big(f"{size:,}", shown, max_bytes)
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _too_big(f"more than {max_bytes:,}", shown, max_bytes)
    except FileNotFoundError:
        raise error("io", f"no such file: '{shown}'", None) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise error("io", f"cannot read '{clip(shown)}': {getattr(exc, 'strerror', None) or exc}", None) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error("encoding", f"spec is not UTF-8 text (byte 0x{data[exc.start]:02x})", Loc(shown, line, col),
                    "save the file as UTF-8") from None
    if "\x00" in text:
        i = text.index("\x00")
        line = text.count("\n", 0, i) + 1
        raise error("encoding", "spec contains NUL bytes; is it a binary file?", Loc(shown, line, i - text.rfind("\n", 0, i)))
    return text, shown


def parse_spec(text: str, file: str, library: bool = False, lib_path: tuple[str, ...] = ()) -> Spec:
    """YAML text -> validated Spec model (structure only; expressions are still strings).

    A `library` may hold just `netc` and `templates` (a file other specs import from); `lib_path`
    is the library folders its `lib:` imports search besides `$NETC_PATH`.
    """
    raw = load_yaml(text, file)
    if raw is None:
        raise error("schema", "empty spec file", Loc(file, 1, 1),
                    "a spec starts with 'netc: 1', a name, an input shape and its layers")
    if not isinstance(raw, dict):
        kind = "a list" if isinstance(raw, list) else f"a {type(raw).__name__}"
        raise error("schema", f"a spec is a mapping of keys, but this document is {kind}",
                    getattr(raw, "loc", None) or Loc(file, 1, 1),
                    "start with 'netc: 1', 'name:', 'input:' and 'layers:'")
    if library and "layers" not in raw and "templates" in raw:
        lib = LocDict(raw, loc=raw.loc)
        lib.key_locs, lib.value_locs = raw.key_locs, raw.value_locs
        lib.setdefault("name", "library")
        lib.setdefault("input", [1])
        lib["layers"] = ["identity"]
        raw = lib
    _check_written_layers(raw, file)
    try:
        spec = Spec.model_validate(raw)
        spec._lib_path = tuple(lib_path)
        return spec
    except ValidationError as exc:
        raise NetcError(diagnostics(exc, raw, raw.loc, known_keys=_known_keys)) from None
    except RecursionError:
        raise error("limit", "spec is nested too deeply", raw.loc) from None


MAX_WRITTEN_LAYERS = 200_000  # layers a spec may write: validating one costs ~1 KB and ~20 µs


def _check_written_layers(raw, file: str) -> None:
    """Refuse a spec that writes more layers than can be validated in bounded time and memory,
    before validating them (the node limit applies only after): any item of a list that is a
    mapping, a list or a name counts, wherever it is."""
    count, stack = 0, [raw]
    while stack:
        v = stack.pop()
        items = list(v.values()) if isinstance(v, dict) else v
        if isinstance(v, list):
            count += sum(1 for x in v if isinstance(x, (dict, list, str)))
            if count > MAX_WRITTEN_LAYERS:
                raise error("limit", f"the spec writes more than {MAX_WRITTEN_LAYERS:,} layers", v.loc,
                            "use repeat: or templates for long stacks of layers")
        stack.extend(x for x in items if isinstance(x, (dict, list)))


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--set k=v` pairs; values are read by the spec's own YAML loader (10, 0.5, true, text, [1, 2])."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise error("usage", f"--set expects key=value, got '{pair}'")
        try:
            out[key] = load_yaml(value, f"--set {key}") if value.strip() else ""
        except NetcError as exc:
            raise error("usage", f"--set {key}: {exc.diagnostics[0].message}",
                        hint="give a number, true/false, a word or a list like [1, 2]") from None
    return out


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else type(value).__name__


def bind_variables(spec: Spec, file: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Spec params (with --set overrides) then vars, evaluated in order.

    An override must have the kind of the parameter's default (a number for a number, a list
    for a list, ...) and numbers must be finite.
    """
    raw = spec._raw
    errors = Collector()
    env: dict[str, Any] = dict(spec.params)
    # --set problems point at the spec's parameters, where the valid names are
    ploc = key_loc(raw, "params", raw.loc) if "params" in raw else (raw.loc or Loc(file, 1, 1))
    for key, value in overrides.items():
        if key not in spec.params:
            errors.add(error("usage", f"--set {key}: the spec has no parameter '{key}'", ploc,
                             did_you_mean(key, spec.params) or
                             f"parameters: {listing(spec.params)}"))
            continue
        want = _kind(spec.params[key])
        if _kind(value) != want:
            errors.add(error("usage", f"--set {key}: expected {want}, got {clip(value)}", ploc))
            continue
        if isinstance(value, float) and not math.isfinite(value):
            errors.add(error("usage", f"--set {key}: {clip(value)} is not a finite number", ploc))
            continue
        env[key] = value
    vraw = raw.get("vars") or {}
    seen = WithNetworkInput(env, spec)  # vars may size by the network's input: `$in_h // 32`
    with work_budget():
        for key, value in spec.vars.items():
            try:
                env[key] = seen[key] = substitute(value, seen, value_loc(vraw, key, raw.loc))
            except NetcError as exc:
                errors.add(exc)
                if "limit" in exc.codes:
                    break
    errors.raise_if_any()
    return env


STDLIB = "netc"  # `lib: netc/NAME` is a template library bundled with netc (netc/stdlib/NAME.yaml)
STDLIB_DIR = Path(__file__).resolve().parent.parent / "stdlib"
LIB_PATH_VAR = "NETC_PATH"


def library_dirs(lib_path: tuple[str, ...] = ()) -> list[Path]:
    """Where `lib:` names other than netc's own are looked up: `--lib` folders, then `$NETC_PATH`'s."""
    env = [d for d in os.environ.get(LIB_PATH_VAR, "").split(os.pathsep) if d]
    return [Path(d) for d in (*lib_path, *env)]


def _library_file(name: str, lib_path: tuple[str, ...], iloc) -> tuple[Path, str]:
    """The file a `lib:` name gives (resolved, and inside its library folder) and its name for messages."""
    bundled = name.split("/")[0] == STDLIB
    dirs, rel = ([STDLIB_DIR], name[len(STDLIB) + 1:]) if bundled else (library_dirs(lib_path), name)
    for folder in dirs:
        root = folder.resolve()
        target = (root / f"{rel}.yaml").resolve()
        # a symbolic link out of the library folder is refused like a path out of a spec's folder
        if target.is_relative_to(root) and target.is_file():
            return target, name if bundled else str(folder / f"{name}.yaml")
    if bundled:
        names = [f"{STDLIB}/{p.stem}" for p in sorted(STDLIB_DIR.glob("*.yaml"))]
        hint = did_you_mean(name, names) or "netc's library: " + listing(names)
    else:
        hint = (f"searched {listing([str(d) for d in dirs])}" if dirs else
                f"no library folder is given: pass --lib DIR or set {LIB_PATH_VAR}")
    raise error("import", f"no library '{clip(name)}'", iloc, hint)


def _import_file(imp: Import, here: Path, file: str, lib_path: tuple[str, ...], iloc) -> tuple[Path, str]:
    """The resolved file an import names and its name for messages; a `file:` stays inside the
    importing spec's folder, a `lib:` inside its library folder."""
    if imp.lib is not None:
        return _library_file(imp.lib, lib_path, iloc)
    shown_name = clip(imp.file)
    try:
        target = (here.parent / imp.file).resolve()
        if Path(imp.file).is_absolute():
            raise error("import", f"import '{shown_name}' must be a path relative to this spec", iloc,
                        "a library of templates shared between folders is imported with 'lib:'")
        if not target.is_relative_to(here.parent) or target.suffix not in (".yaml", ".yml"):
            raise error("import", f"import '{shown_name}' must name a .yaml file in this spec's directory or below it",
                        iloc, "a library of templates shared between folders is imported with 'lib:'")
        is_file = target.is_file()
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long for the file system
        raise error("import", f"cannot import '{shown_name}': {getattr(exc, 'strerror', None) or exc}", iloc) from None
    shown = str(Path(file).parent / imp.file)
    if not is_file:
        raise error("import", f"cannot import '{shown_name}': no such file ({clip(shown)})", iloc)
    return target, shown


def collect_templates(spec: Spec, file: str, max_bytes: int = MAX_FILE_BYTES,
                      _seen: tuple[str, ...] = (), _parsed: dict | None = None) -> dict[str, Template]:
    """The spec's own templates plus those it imports (recursively, cycles rejected).

    A `file:` import is a relative path to a .yaml/.yml file inside the importing spec's directory
    (subdirectories allowed): a downloaded spec cannot read files elsewhere on the machine. A `lib:`
    import names a library file inside netc's own library or a library folder (`--lib`, `$NETC_PATH`).
    Each file is read and parsed once however many files import it (`_parsed`: resolved path
    -> its templates, or the error it gave), so diamonds of imports cost their files, not their paths.
    """
    templates: dict[str, Template] = {}
    errors = Collector()
    parsed = {} if _parsed is None else _parsed
    here = Path(file).resolve()
    for imp in spec.imports:
        iloc = value_loc(imp._raw, "lib" if imp.lib is not None else "file", getattr(imp._raw, "loc", None))
        try:
            target, shown = _import_file(imp, here, file, spec._lib_path, iloc)
        except NetcError as exc:
            errors.add(exc)
            continue
        if str(target) in _seen or target == here:
            errors.add(error("import", f"import cycle: '{clip(imp.lib or imp.file)}' imports back", iloc))
            continue
        if len(_seen) >= MAX_IMPORT_DEPTH:
            errors.add(error("limit", f"imports nested deeper than {MAX_IMPORT_DEPTH}", iloc))
            continue
        key = str(target)
        if key not in parsed:
            try:
                text, shown = read_text(target, shown, max_bytes)
                other = parse_spec(text, shown, library=True, lib_path=spec._lib_path)
                parsed[key] = collect_templates(other, shown, max_bytes, _seen + (str(here),), parsed)
            except NetcError as exc:
                parsed[key] = exc
        theirs = parsed[key]
        if isinstance(theirs, NetcError):
            errors.add(theirs)
            continue
        _take(templates, theirs, imp, iloc, errors)
    traw = spec._raw.get("templates") or {}
    for name, template in spec.templates.items():
        if name in templates:
            errors.add(error("name", f"template '{name}' is both defined here and imported", key_loc(traw, name)))
        templates[name] = template
    errors.raise_if_any()
    return templates


def _take(templates: dict, theirs: dict, imp: Import, iloc, errors: Collector) -> None:
    """The templates an import asks for (all by default) from what its file defines, with the
    templates of that file they use (`templates: [Bottleneck]` brings the Shortcut it instantiates)."""
    asked = imp.templates if imp.templates is not None else list(theirs)
    for name in asked:
        if name not in theirs:
            errors.add(error("import", f"'{clip(imp.lib or imp.file)}' has no template '{clip(name)}'", iloc,
                             did_you_mean(name, theirs)))
    todo = [name for name in asked if name in theirs]
    templates.update((name, theirs[name]) for name in todo)
    done = set(todo)
    while todo:  # what they use, unless another import gave that name already
        for used in _uses(theirs[todo.pop()]._raw):
            if used in theirs and used not in done and used not in templates:
                templates[used] = theirs[used]
                done.add(used)
                todo.append(used)


def _uses(raw) -> set[str]:
    """The template names a template's YAML instantiates (`use:` anywhere in it)."""
    found, stack = set(), [raw]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if isinstance(value.get("use"), str):
                found.add(value["use"])
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found


def with_input_shape(spec: Spec, shape: tuple[int, ...]) -> Spec:
    """The spec analysed at another input shape (`--input`); it keeps its source locations."""
    copy = spec.model_copy(update={"input": list(shape)})
    copy._raw = spec._raw
    return copy
