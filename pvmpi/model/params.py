"""Read OpenPV ``.params`` files into the same raw config the YAML loader makes.

A params file and its YAML form must mean exactly the same network, so this
module reproduces OpenPV's flex lexer and bison grammar (facts §2.1, §2.2)
rule for rule, quirks included: any ``/`` outside quotes starts a comment,
an exponent number needs exactly one digit before its point, ``infinity`` is
FLT_MAX, quoted tokens allow a small character set. Where OpenPV would print
a message and crash (or silently misread), we raise one :class:`PvmpiError`
naming the file, line (and column for syntax errors), group and parameter.

Value types: a number token without ``.`` or exponent is an ``int``, other
numbers (and ``true``/``false``, which OpenPV reads as 1 and 0) are
``float``; ``infinity`` is FLT_MAX; ``NULL`` is ``None``; strings are
``str``; arrays are lists of numbers. The schema coerces them later.
"""
import copy
import re
import warnings
from dataclasses import dataclass, field

from ..errors import PvmpiError
from .config import RawConfig, RawGroup, read_config_bytes
from .schema import FLT_MAX

# ---------------------------------------------------------------- lexer

_FLOAT_MARK = re.compile(r"[.eE]")
#: longer integer tokens are read as floats (OpenPV reads every number as a double; Python refuses
#: to convert more than 4300 digits to an int)
MAX_INT_DIGITS = 4000


def _number(text):
    if _FLOAT_MARK.search(text) or len(text) > MAX_INT_DIGITS:
        return float(text)
    return int(text)


# (token kind, pattern, converter). Like flex: at each position the longest
# match wins; among equally long matches, the rule listed first.
_RULES = [
    ("INCLUDE", r"\#include", None),
    ("SWEEP", r"ParameterSweep", None),
    ("OVERWRITE", r"@[a-zA-Z][a-zA-Z0-9_]*", lambda t: t[1:]),
    ("NUMBER", r"[+-]?[0-9]+(?:\.[0-9]*)?", _number),
    ("NUMBER", r"[+-]?[0-9]*\.[0-9]+", _number),
    ("NUMBER", r"[+-]?[0-9](?:\.[0-9]*)?[Ee][+-]?[0-9]+", _number),
    ("NUMBER", r"\+?infinity", lambda t: FLT_MAX),
    ("NUMBER", r"-infinity", lambda t: -FLT_MAX),
    ("NUMBER", r"true", lambda t: 1.0),
    ("NUMBER", r"false", lambda t: 0.0),
    ("NULL", r"NULL", lambda t: None),
    ("ID", r"[a-zA-Z][a-zA-Z0-9_]*", str),
    ("GROUPID", r'"[0-9A-Za-z][0-9A-Za-z_]*"', lambda t: t[1:-1]),
    ("STRING", r'"[a-zA-Z0-9_ ]*"', lambda t: t[1:-1]),
    ("FILENAME", r'"[a-zA-Z0-9_~+/.-]+"', lambda t: t[1:-1]),
    ("PUNCT", r"[{}\[\]=,;:]", str),
    ("COMMENT", r"/[^\n]*", None),
    ("SPACE", r"[ \t\r\n]+", None),
]
_COMPILED = [(kind, re.compile(pat), conv) for kind, pat, conv in _RULES]
QUOTED = ("GROUPID", "STRING", "FILENAME")


@dataclass
class Token:
    """One lexical token of a params file, with its converted value and its line for error messages."""

    kind: str
    text: str
    value: object
    line: int
    col: int


def tokenize(text, path="<string>"):
    """Split params text into tokens (ending with an EOF token); lex errors name line and column."""
    tokens, pos, line, line_start = [], 0, 1, 0
    while pos < len(text):
        kind, length, conv = _longest_match(text, pos)
        col = pos - line_start + 1
        if kind is None:
            _lex_error(text, pos, line, col, path)
        chunk = text[pos:pos + length]
        if kind not in ("COMMENT", "SPACE"):
            value = conv(chunk) if conv else chunk
            tokens.append(Token(kind, chunk, value, line, col))
        newlines = chunk.count("\n")
        if newlines:
            line += newlines
            line_start = pos + chunk.rindex("\n") + 1
        pos += length
    tokens.append(Token("EOF", "", None, line, pos - line_start + 1))
    return tokens


def _longest_match(text, pos):
    best = (None, 0, None)
    for kind, regex, conv in _COMPILED:
        m = regex.match(text, pos)
        if m and len(m.group()) > best[1]:
            best = (kind, len(m.group()), conv)
    return best


def _lex_error(text, pos, line, col, path):
    """Explain why nothing matches at `pos` (a bad quoted token, a stray character)."""
    ch = text[pos]
    if ch == '"':
        end = text.find('"', pos + 1)
        eol = text.find("\n", pos)
        if end < 0 or (0 <= eol < end):
            what = "unterminated quoted token (a quoted token must end on the same line)"
        else:
            inner = text[pos + 1:end]
            bad = next((i for i, c in enumerate(inner) if not re.match(r"[a-zA-Z0-9_ ~+/.-]", c)), None)
            if bad is None:
                what = (f"quoted token {text[pos:end + 1]} mixes a space with file-name characters "
                        f"(~+/.-)")
            else:
                col += bad + 1
                what = f"character {inner[bad]!r} is not allowed inside a quoted token"
        hint = ("OpenPV strings hold letters, digits, '_' and spaces; file names hold letters, "
                "digits and _~+/.-")
    elif ch == "#":
        what, hint = "'#' must start '#include'", None
    elif ch == "@":
        what, hint = "'@' must be followed by a parameter name", "e.g. @updateGpu = true;"
    else:
        what, hint = f"unexpected character {ch!r}", None
    raise PvmpiError(f"syntax error at column {col}: {what}", file=path, line=line, hint=hint)


# ---------------------------------------------------------------- results

@dataclass
class ParameterSweep:
    """``ParameterSweep "group":param = { v0; v1; ... };`` - run i uses values[i]."""

    group: str
    param: str
    values: list
    line: int = None


@dataclass
class Directive:
    """A top-level ``name = number;`` statement (debugParsing, disable)."""

    name: str
    value: float
    line: int


@dataclass
class ParamsFile:
    """A parsed params file: groups (RawGroup, file order), directives and sweeps."""

    path: str
    groups: list
    directives: list = field(default_factory=list)
    sweeps: list = field(default_factory=list)

    def group(self, name):
        """The group called ``name``, or None."""
        return next((g for g in self.groups if g.name == name), None)

    @property
    def debug_parsing(self):
        """The last debugParsing value, or None when the file sets none."""
        vals = [d.value for d in self.directives if d.name == "debugParsing"]
        return bool(vals[-1]) if vals else None

    def to_raw_config(self):
        """The network as a RawConfig (a deep copy: validation may fill in values)."""
        if self.sweeps:
            n = len(self.sweeps[0].values)
            raise PvmpiError(f"the params file defines a ParameterSweep of {n} runs; a single "
                             "config cannot hold it", file=self.path, line=self.sweeps[0].line,
                             hint="use sweep_configs() to get one config per run")
        return RawConfig(path=self.path, groups=copy.deepcopy(self.groups), strict=False)

    def sweep_configs(self):
        """One RawConfig per sweep index, as OpenPV runs them (facts §2.2)."""
        if not self.sweeps:
            return [self.to_raw_config()]
        return sweep_runs(RawConfig(path=self.path, groups=self.groups, strict=False), self.sweeps)


def sweep_runs(raw, sweeps):
    """One RawConfig per sweep index: run i applies the i-th value of every sweep.

    Works on any RawConfig (checked by :func:`check_sweeps`), so a YAML form of
    sweeps can share it.
    """
    sweeps, runs = _with_output_sweeps(raw, sweeps), []
    for i in range(len(sweeps[0].values)):
        groups = copy.deepcopy(raw.groups)
        for s in sweeps:
            g = next(g for g in groups if g.name == s.group)
            g.values[s.param] = copy.deepcopy(s.values[i])
            g.lines[s.param] = s.line
        runs.append(RawConfig(path=raw.path, groups=groups, parallel=dict(raw.parallel), strict=raw.strict))
    return runs


def _with_output_sweeps(raw, sweeps):
    """The sweeps plus OpenPV's automatic outputPath/checkpointWriteDir sweeps (paramsweep_<i>/),
    so that the runs of a sweep never write into each other's directories."""
    col = next(g for g in raw.groups if g.cls == "HyPerCol")
    swept = {s.param for s in sweeps if raw.group(s.group) is col}
    n = len(sweeps[0].values)
    width = len(str(n - 1))
    extra = []
    for pname in ("outputPath", "checkpointWriteDir"):
        base = col.values.get(pname)
        if pname in swept or not isinstance(base, str):
            continue
        paths = [f"{base}/paramsweep_{i:0{width}d}/" for i in range(n)]
        extra.append(ParameterSweep(col.name, pname, paths, col.lines.get(pname)))
    return list(sweeps) + extra


# ---------------------------------------------------------------- parser

def _kind_of(value):
    if isinstance(value, list):
        return "array"
    return "string" if value is None or isinstance(value, str) else "number"


class _Parser:
    """Recursive descent over the token list; applies OpenPV's actions as it goes."""

    def __init__(self, tokens, path, text):
        self.toks, self.i, self.path = tokens, 0, path
        self.lines = text.split("\n")
        self.groups, self.directives, self.sweeps = [], [], []
        self.by_name = {}  # groups by name: a file of many groups parses in linear time
        self.disabled = False

    # -- token helpers
    @property
    def tok(self):
        return self.toks[self.i]

    def peek(self, k=1):
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self):
        t = self.tok
        self.i += 1
        return t

    def is_punct(self, ch, tok=None):
        tok = tok or self.tok
        return tok.kind == "PUNCT" and tok.text == ch

    def expect(self, ch, after=None):
        if not self.is_punct(ch):
            self.syntax_error(f"expected '{ch}'" + (f" after {after}" if after else ""))
        return self.take()

    def syntax_error(self, what, tok=None, hint=None):
        tok = tok or self.tok
        found = "end of file" if tok.kind == "EOF" else repr(tok.text)
        prev = self.toks[self.i - 1] if self.i > 0 else None
        if hint is None and prev is not None and prev.kind == "NUMBER" and tok.kind == "ID" \
                and tok.text[0] in "eE" and (prev.line, prev.col + len(prev.text)) == (tok.line, tok.col):
            word = re.match(r"[^\s;,\]]*", self.lines[prev.line - 1][prev.col - 1:]).group()
            hint = (f"'{word}' is not an OpenPV number: the exponent form needs exactly one digit "
                    "before the point, e.g. 1.5e-3")
        raise PvmpiError(f"syntax error at column {tok.col}: {what}, found {found}",
                         file=self.path, line=tok.line, hint=hint)

    def error(self, what, tok, group=None, param=None, hint=None):
        raise PvmpiError(what, file=self.path, line=tok.line, group=group, param=param, hint=hint)

    # -- file := { directive | group | sweep }
    def parse(self):
        while self.tok.kind != "EOF":
            if self.tok.kind == "SWEEP":
                self.sweep()
            elif self.tok.kind == "ID" and self.is_punct("=", self.peek()):
                self.directive()
            elif self.tok.kind == "ID" and self.peek().kind in QUOTED + ("NULL",):
                if self.tok.text == "BatchSweep":
                    self.error("BatchSweep was removed from OpenPV in 2017", self.tok,
                               hint="use ParameterSweep")
                self.group()
            elif self.tok.kind == "ID":
                self.take()
                self.syntax_error("expected '=' (a directive) or a quoted group name")
            else:
                self.syntax_error('expected a group (Keyword "name" = { ... };), a directive '
                                  "(name = number;) or a ParameterSweep")
        return self.groups

    # -- directive := ID '=' NUMBER ';'
    def directive(self):
        name = self.take()
        self.take()
        if self.tok.kind != "NUMBER":
            self.syntax_error(f"a directive ({name.text} = ...) takes a number")
        value = self.take().value
        self.expect(";", "the directive")
        self.directives.append(Directive(name.text, value, name.line))
        if name.text == "disable":
            self.disabled = value != 0
        elif name.text != "debugParsing":
            warnings.warn(f"{self.path}:{name.line}: unrecognized directive '{name.text}' skipped "
                          "(OpenPV knows debugParsing and disable)", stacklevel=3)

    # -- group := KEYWORD "name" '=' '{' { def } '}' ';'
    def group(self):
        kw, name_tok = self.take(), self.take()
        if name_tok.kind not in ("GROUPID", "STRING") or not name_tok.value:
            self.error(f"{name_tok.text} is not a valid group name", name_tok,
                       hint="a group name is letters, digits and '_' in quotes")
        name = name_tok.value
        self.expect("=", f'{kw.text} "{name}"')
        self.expect("{", f'{kw.text} "{name}" =')
        g = RawGroup(name, kw.text, {}, kw.line, {})
        state = {"statements": 0, "included": {}}
        while not self.is_punct("}"):
            if self.tok.kind == "EOF":
                self.syntax_error(f"expected '}}' to close group '{name}'")
            self.definition(g, state)
            state["statements"] += 1
        self.take()
        self.expect(";", f"'}}' of group '{name}'")
        if self.disabled:
            return
        first = self.by_name.get(name)
        if first is not None:
            self.error(f"group '{name}' is defined twice (first at line {first.line})", name_tok,
                       group=name)
        self.groups.append(g)
        self.by_name[name] = g

    def definition(self, g, state):
        tok = self.tok
        if tok.kind == "INCLUDE":
            return self.include(g, state)
        if tok.kind not in ("ID", "OVERWRITE"):
            self.syntax_error("expected a parameter definition (name = value;), @name = value; "
                              "or #include")
        self.take()
        self.expect("=", f"'{tok.text}'")
        value = self.value(tok.text)
        self.expect(";", f"the value of '{tok.text}'")
        if self.disabled:
            return
        if tok.kind == "ID":
            self.define(g, tok, value, state)
        else:
            self.overwrite(g, tok, value)

    def value(self, pname):
        t = self.tok
        if t.kind in ("NUMBER", "NULL") + QUOTED:
            return self.take().value
        if self.is_punct("["):
            self.take()
            items = [self.array_number()]
            while self.is_punct(","):
                self.take()
                items.append(self.array_number())
            self.expect("]", "the array values")
            return items
        self.syntax_error(f"expected a value for '{pname}' (a number, a quoted string, NULL or "
                          "[numbers])")

    def array_number(self):
        if self.tok.kind != "NUMBER":
            self.syntax_error("expected a number in the array")
        return self.take().value

    def define(self, g, tok, value, state):
        name = tok.text
        if name in g.values:
            src = state["included"].get(name)
            if src:
                what = f"parameter is already defined: it was copied from '{src}' by #include"
                hint = f"write @{name} = ...; to override it"
            else:
                what, hint = f"parameter defined twice (first at line {g.lines[name]})", None
            self.error(what, tok, group=g.name, param=name, hint=hint)
        g.values[name] = value
        g.lines[name] = tok.line

    def overwrite(self, g, tok, value):
        name = tok.value
        if name not in g.values:
            self.error(f"@{name} overwrites nothing: '{name}' is not defined in this group",
                       tok, group=g.name, param=name,
                       hint="@ changes a value copied by #include (or set earlier in the group)")
        old, new = _kind_of(g.values[name]), _kind_of(value)
        if old != new:
            self.error(f"@{name} cannot overwrite a {old} parameter with a{'n' if new == 'array' else ''} "
                       f"{new}", tok, group=g.name, param=name)
        g.values[name] = value
        g.lines[name] = tok.line

    # -- '#include' "G" ';'
    def include(self, g, state):
        inc = self.take()
        target = self.tok
        if target.kind not in QUOTED:
            self.syntax_error('expected a quoted group name after #include')
        self.take()
        self.expect(";", "#include")
        if self.disabled:
            return
        name = target.value
        ctx = dict(group=g.name, param=None)
        if state["statements"]:
            self.error(f'#include "{name}" must be the first statement of the group', inc, **ctx)
        src = self.by_name.get(name)
        if src is None:
            hint = "a group cannot include itself" if name == g.name else \
                "#include copies a group defined earlier in the file"
            self.error(f"#include: no group named '{name}' is defined before this one", inc,
                       hint=hint, **ctx)
        if src.cls != g.cls:
            self.error(f"cannot #include '{name}', a {src.cls}, into a {g.cls}: the keywords must "
                       "be the same", inc, **ctx)
        g.values.update(copy.deepcopy(src.values))
        g.lines.update({p: inc.line for p in src.values})
        state["included"].update({p: name for p in src.values})

    # -- sweep := 'ParameterSweep' "group" ':' param '=' '{' { value ';' } '}' ';'
    def sweep(self):
        kw = self.take()
        gtok = self.tok
        if gtok.kind not in QUOTED:
            self.syntax_error("expected a quoted group name after ParameterSweep")
        self.take()
        self.expect(":", "the group name of the ParameterSweep")
        if self.tok.kind != "ID":
            self.syntax_error("expected the swept parameter's name")
        ptok = self.take()
        self.expect("=", f"ParameterSweep {gtok.text}:{ptok.text}")
        self.expect("{", f"ParameterSweep {gtok.text}:{ptok.text} =")
        values = []
        while not self.is_punct("}"):
            t = self.tok
            if t.kind == "NULL":
                self.error("NULL is not allowed in a ParameterSweep", t, group=gtok.value,
                           param=ptok.text)
            if t.kind != "NUMBER" and t.kind not in QUOTED:
                self.syntax_error("expected a sweep value (a number or a quoted string) or '}'")
            values.append(self.take())
            self.expect(";", "the sweep value")
        self.take()
        self.expect(";", "'}' of the ParameterSweep")
        if self.disabled:
            return
        ctx = dict(group=gtok.value, param=ptok.text)
        if not values:
            self.error("a ParameterSweep needs at least one value", kw, **ctx)
        if len({v.kind == "NUMBER" for v in values}) > 1:
            self.error("a ParameterSweep's values must be all numbers or all strings", kw, **ctx)
        self.sweeps.append(ParameterSweep(gtok.value, ptok.text, [v.value for v in values], kw.line))


def check_sweeps(pf, sweeps):
    """OpenPV's checks once the whole file is read: groups exist, sizes agree, kinds match.

    `pf` is anything with path, groups and group(name): a ParamsFile or a RawConfig.
    """
    seen = set()
    for s in sweeps:
        ctx = dict(file=pf.path, line=s.line, group=s.group, param=s.param)
        g = pf.group(s.group)
        if g is None:
            raise PvmpiError(f"ParameterSweep: there is no group '{s.group}'", **ctx)
        if (s.group, s.param) in seen:
            raise PvmpiError("this parameter is swept twice", **ctx)
        seen.add((s.group, s.param))
        first = sweeps[0]
        if not s.values:
            raise PvmpiError("a ParameterSweep needs at least one value", **ctx)
        if len(s.values) != len(first.values):
            raise PvmpiError(f"all ParameterSweeps must have the same number of values: this one has "
                             f"{len(s.values)}, the first ({first.group}:{first.param}) "
                             f"{len(first.values)}", **ctx)
        if len({_kind_of(v) for v in s.values}) > 1 or _kind_of(s.values[0]) == "array" \
                or None in s.values:
            raise PvmpiError("a ParameterSweep's values must be all numbers or all strings (not NULL)",
                             **ctx)
        sweep_kind = _kind_of(s.values[0])
        if s.param in g.values and _kind_of(g.values[s.param]) != sweep_kind:
            raise PvmpiError(f"a ParameterSweep of {sweep_kind}s cannot set a "
                             f"{_kind_of(g.values[s.param])} parameter", **ctx)
    if sweeps:
        col = next((g for g in pf.groups if g.cls == "HyPerCol"), None)
        if col is None:
            raise PvmpiError("a ParameterSweep needs a HyPerCol group", file=pf.path)
        swept = {s.param for s in sweeps if pf.group(s.group) is col}
        if "outputPath" not in swept and not isinstance(col.values.get("outputPath"), str):
            raise PvmpiError("outputPath must be set when a ParameterSweep does not sweep it "
                             "(each run writes to <outputPath>/paramsweep_<i>/)", file=pf.path,
                             line=col.line, group=col.name, param="outputPath")


# ---------------------------------------------------------------- entry points

def parse_params(text, path="<string>"):
    """Parse OpenPV params text into a :class:`ParamsFile`."""
    parser = _Parser(tokenize(text, path), path, text)
    groups = parser.parse()
    if not groups:
        raise PvmpiError("the params file defines no groups", file=path,
                         hint='expected HyPerCol "column" = { ... }; first')
    pf = ParamsFile(path, groups, parser.directives, parser.sweeps)
    check_sweeps(pf, pf.sweeps)
    return pf


def load_params(path):
    """Read and parse a ``.params`` file, or run a ``.lua`` params file and parse what it prints."""
    path = str(path)
    if path.endswith(".lua"):
        from .lua import params_text_of

        return parse_params(params_text_of(path), f"{path} (printed by Lua)")  # lines of what it printed
    text = read_config_bytes(path, "params file").decode("utf-8", errors="replace")
    return parse_params(text, path)


def is_identifier(name):
    """True when `name` lexes as one bare OpenPV identifier (not true, NULL, infinity, ...)."""
    if not isinstance(name, str) or not name:
        return False
    kind, length, _ = _longest_match(name, 0)
    return kind == "ID" and length == len(name)
