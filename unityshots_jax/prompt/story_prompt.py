"""The story prompt format: a YAML or JSON story file validated into frozen dataclasses.

A story holds a global caption, optional characters (each with an optional reference portrait and voice) and
1..MAX_SHOTS shots (duration, caption, dialogue and its speaker, transition, boundary strength, mode, first frame,
subject). Each shot is bound to the characters whose references it uses (`character_binding`). Validation
reports exactly one problem, the first in document order, as a `StoryPromptError` whose `field` is a path such as
`shots[2].duration`. The format, the caption composition rule and the error style are in docs/story_format.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from unityshots_jax.prompt.character_binding import CastMember, bind_speaker, bind_subject, cast_of
from unityshots_jax.story.cut_prior import CUT_ALIASES, canonical_cut, cut_strength

FORMAT_VERSION = 1
MAX_SHOTS = 9
MAX_DURATION_S = 60.0
MODES = ("t2v", "i2v", "r2v")
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class StoryPromptError(ValueError):
    """One problem in a story: `field` is its path (`shots[2].duration`, or `story` for the file as a whole),
    `reason` what is wrong; `str(error)` is `"{source}: {field}: {reason}"`."""

    def __init__(self, source: str, field: str, reason: str):
        super().__init__(f"{source}: {field}: {reason}")
        self.source, self.field, self.reason = source, field, reason


@dataclasses.dataclass(frozen=True)
class Character:
    """A character: one-word `name`, `description`, and absolute paths to its optional portrait and voice."""

    name: str
    description: str
    reference_image: Path | None = None
    reference_voice: Path | None = None


@dataclasses.dataclass(frozen=True)
class Shot:
    """A shot: `duration` (s), `caption`, `dialogue`, `speaker` (the character whose voice speaks the dialogue,
    as the character spells its name; None without dialogue or voices), canonical `transition` ("FIRST" /
    "CONTINUE" / "HARD"), `boundary_strength` (τ override or None), `mode` ("t2v" / "i2v" / "r2v"), `first_frame`
    (absolute, i2v only), `subject` (the character whose portrait an r2v shot uses; None if not written and not
    r2v). `speaker` and `subject` hold the defaults of `character_binding` when the file omits them."""

    duration: float
    caption: str
    dialogue: str | None = None
    speaker: str | None = None
    transition: str = "HARD"
    boundary_strength: float | None = None
    mode: str = "t2v"
    first_frame: Path | None = None
    subject: str | None = None


@dataclasses.dataclass(frozen=True)
class StoryPrompt:
    """A validated story: global `caption`, `negative_caption`, `characters`, `shots`, and the file it came from
    (`source`, absolute; None when parsed from memory)."""

    caption: str
    negative_caption: str
    characters: tuple[Character, ...]
    shots: tuple[Shot, ...]
    source: Path | None = None


def _rule(test: Callable[[Any], Any], message: str, convert: Callable[[Any], Any] = lambda v: v) -> AfterValidator:
    """A pydantic AfterValidator: `convert(value)` if it passes `test`, else ValueError(message.format(v=value))."""

    def check(value: Any) -> Any:
        """Apply the rule to one value."""
        converted = convert(value)
        if not test(converted):
            raise ValueError(message.format(v=value))
        return converted

    return AfterValidator(check)


def _cut_or_none(name: Any) -> str | None:
    """The canonical cut class of a transition name, or None if it is not a known name."""
    try:
        return canonical_cut(name) if isinstance(name, str) else None
    except ValueError:
        return None


def _mode_or_none(mode: Any) -> str | None:
    """The lower-case mode ("t2v" / "i2v" / "r2v") of a raw mode value (None → "t2v"), or None if invalid."""
    mode = "t2v" if mode is None else mode.strip().lower() if isinstance(mode, str) else None
    return mode if mode in MODES else None


_TRANSITIONS = ", ".join(sorted(name.lower() for name in CUT_ALIASES))
_Text = Annotated[str, _rule(bool, "must be a non-empty string", str.strip)]
_Name = Annotated[_Text, _rule(NAME_PATTERN.fullmatch, "{v!r} is not one word matching " + NAME_PATTERN.pattern)]
_Duration = Annotated[float, _rule(lambda v: math.isfinite(v) and 0.0 < v <= MAX_DURATION_S,
                                   f"must be a finite number of seconds in (0, {MAX_DURATION_S:g}], got {{v!r}}")]
_Unit = Annotated[float, _rule(lambda v: math.isfinite(v) and 0.0 <= v <= 1.0, "must be a number in [0, 1], got {v!r}")]
_Transition = Annotated[str, _rule(bool, "unknown transition {v!r}; expected one of " + _TRANSITIONS, _cut_or_none)]
_Mode = Annotated[str, _rule(bool, "unknown mode {v!r}; expected one of t2v, i2v, r2v", _mode_or_none)]
_Version = Annotated[int, _rule(lambda v: v == FORMAT_VERSION, f"unsupported version {{v}}; expected {FORMAT_VERSION}")]
_RAW = ConfigDict(extra="forbid", strict=True, frozen=True)


class _RawCharacter(BaseModel):
    """A character entry as written (types and single-field constraints only)."""

    model_config = _RAW
    name: _Name
    description: _Text
    reference_image: _Text | None = None
    reference_voice: _Text | None = None


class _RawShot(BaseModel):
    """A shot entry as written (types and single-field constraints only)."""

    model_config = _RAW
    duration: _Duration
    caption: _Text
    dialogue: str | None = None
    speaker: _Name | None = None
    transition: _Transition | None = None
    boundary_strength: _Unit | None = None
    mode: _Mode | None = None
    first_frame: _Text | None = None
    subject: _Name | None = None


class _RawStory(BaseModel):
    """The top-level mapping as written (types and single-field constraints only)."""

    model_config = _RAW
    version: _Version | None = None
    caption: _Text
    negative_caption: str | None = None
    characters: list[_RawCharacter] | None = None
    shots: Annotated[list[_RawShot], Field(min_length=1, max_length=MAX_SHOTS)]


_EXPECTED = {"string_type": "a string", "float_type": "a number", "int_type": "an integer", "list_type": "a list",
             "model_type": "a mapping", "dict_type": "a mapping", "model_attributes_type": "a mapping"}


def _describe(value: Any) -> str:
    """A short description of a raw value (its kind, and the value itself for scalars) for error reasons."""
    kind = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", dict: "a mapping",
            list: "a list"}.get(type(value), type(value).__name__)
    text = repr(value) if isinstance(value, (int, float, str)) else ""
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}".rstrip()


def _reason(error: dict) -> str:
    """A one-line reason for one pydantic error entry."""
    kind = error["type"]
    fixed = {"missing": "required field is missing", "extra_forbidden": "unknown field"}
    if kind in fixed:
        return fixed[kind]
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in ("too_short", "too_long"):
        return f"expected 1 to {MAX_SHOTS} shots, got {error['ctx']['actual_length']}"
    return f"expected {_EXPECTED[kind]}, got {_describe(error['input'])}" if kind in _EXPECTED else error["msg"]


def _locate(data: Any, loc: tuple) -> tuple[str, tuple[int, ...]]:
    """(field path like `shots[2].duration`, document-order key) of location `loc` in the raw data. A missing key
    sorts after every key present in its mapping."""
    parts: list[str] = []
    order: list[int] = []
    node = data
    for step in loc:
        if isinstance(node, list) and isinstance(step, int):
            parts.append(f"[{step}]")
            order.append(step)
            node = node[step] if 0 <= step < len(node) else None
        else:
            keys = list(node) if isinstance(node, dict) else []
            parts.append(f".{step}" if parts else str(step))
            order.append(keys.index(step) if step in keys else len(keys))
            node = node[step] if step in keys else None
    return "".join(parts), tuple(order)


def _entries(data: dict, group: str) -> list[tuple[int, dict]]:
    """(index, entry) of each mapping entry of the list `group` ("characters" / "shots"); anything else is skipped."""
    items = data.get(group)
    return [(i, entry) for i, entry in enumerate(items) if isinstance(entry, dict)] if isinstance(items, list) else []


def _written_name(entry: dict, field: str) -> tuple[bool, str | None]:
    """(usable, name) of an optional name field of a raw entry: (True, None) when omitted or null, (True, name)
    when a valid one-word name, (False, None) when invalid (its field error is reported instead)."""
    value = entry.get(field)
    if value is None:
        return True, None
    name = value.strip() if isinstance(value, str) else ""
    return (True, name) if NAME_PATTERN.fullmatch(name) else (False, None)


def _binding_errors(entry: dict, i: int, cast: dict[str, CastMember]) -> list[tuple[tuple, str]]:
    """The speaker / subject problems of raw shot `i` (`character_binding`)."""
    errors: list[tuple[tuple, str]] = []
    dialogue = entry.get("dialogue")
    usable, speaker = _written_name(entry, "speaker")
    if usable:
        problem = bind_speaker(cast, speaker, dialogue=isinstance(dialogue, str) and bool(dialogue.strip()))[1]
        errors += [(("shots", i, "speaker"), problem)] if problem else []
    usable, subject = _written_name(entry, "subject")
    mode = _mode_or_none(entry.get("mode"))
    if usable and mode is not None:
        problem = bind_subject(cast, subject, r2v=mode == "r2v")[1]
        errors += [(("shots", i, problem[0]), problem[1])] if problem else []
    return errors


def _cross_errors(data: dict) -> list[tuple[tuple, str]]:
    """Problems that involve more than one field or entry, found on the raw data (entries whose own fields are
    invalid are skipped here: their field errors are reported instead)."""
    errors: list[tuple[tuple, str]] = []
    seen: dict[str, int] = {}
    members: list[CastMember] = []
    for i, character in _entries(data, "characters"):
        name = character.get("name")
        key = name.strip() if isinstance(name, str) else ""
        if NAME_PATTERN.fullmatch(key) and key.lower() in seen:
            reason = f"duplicate name {key!r} (characters[{seen[key.lower()]}], ignoring case)"
            errors.append((("characters", i, "name"), reason))
        seen.setdefault(key.lower(), i)
        if NAME_PATTERN.fullmatch(key):
            members.append(CastMember(key, character.get("reference_image") is not None,
                                      character.get("reference_voice") is not None))
    cast = cast_of(members)
    for i, shot in _entries(data, "shots"):
        cut = _cut_or_none(shot.get("transition"))
        if cut is not None and (cut == "FIRST") != (i == 0):
            reason = f"the first shot must be FIRST, got {cut}" if i == 0 else "only the first shot may be FIRST"
            errors.append((("shots", i, "transition"), reason))
        mode = _mode_or_none(shot.get("mode"))
        has_frame = shot.get("first_frame") is not None
        if mode is not None and (mode == "i2v") != has_frame:
            reason = "required when mode is i2v" if mode == "i2v" else f"allowed only when mode is i2v (mode is {mode})"
            errors.append((("shots", i, "first_frame"), reason))
        errors += _binding_errors(shot, i, cast)
    return errors


def _resolve(text: str | None, base_dir: Path | None) -> Path | None:
    """The absolute path of `text` (None stays None), relative to `base_dir` (default: the working directory)."""
    path = None if text is None else Path(text.strip())
    return path if path is None else (path if path.is_absolute() else (base_dir or Path.cwd()) / path).resolve()


def _file_problem(path: Path, kind: str) -> str | None:
    """Why `path` is not a readable file that Pillow (`kind` "image") or PyAV (`kind` "audio") decodes, or None.
    Pillow and PyAV are imported here: only stories with reference files need them."""
    if not path.is_file():
        return f"{path}: {'not a regular file' if path.exists() else 'not found'}"
    if not os.access(path, os.R_OK):
        return f"{path}: not readable"
    try:
        if kind == "image":
            from PIL import Image

            with Image.open(path) as image:
                image.verify()
            with Image.open(path) as image:  # verify() leaves the image unusable; decode pixels on a fresh open
                image.load()
            return None
        import av

        with av.open(str(path)) as container:
            if not container.streams.audio:
                return f"{path}: no audio stream"
            if next(container.decode(audio=0), None) is None:
                return f"{path}: audio stream has no decodable frames"
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the file is unusable
        return f"{path}: cannot decode {kind} ({type(exc).__name__}: {getattr(exc, 'strerror', None) or exc})"
    return None


def _file_fields(data: dict) -> list[tuple[tuple, str, str]]:
    """(location, raw path text, "image" | "audio") of every referenced file written as a non-empty string."""
    fields = {"characters": (("reference_image", "image"), ("reference_voice", "audio")),
              "shots": (("first_frame", "image"),)}
    return [((group, i, name), entry[name], kind) for group, names in fields.items()
            for i, entry in _entries(data, group)
            for name, kind in names if isinstance(entry.get(name), str) and entry[name].strip()]


def parse_story_prompt(data: dict, *, source: str = "<story>", base_dir: Path | None = None,
                       check_files: bool = True) -> StoryPrompt:
    """Validate an in-memory story mapping → StoryPrompt (source None); raise the first problem in document order
    as StoryPromptError. Relative paths resolve against `base_dir` (default: the working directory); with
    `check_files`, referenced images must decode with Pillow and voices with PyAV."""
    if not isinstance(data, dict):
        raise StoryPromptError(source, "story", f"the top level must be a mapping, got {_describe(data)}")
    found: list[tuple[tuple, str]] = []
    raw = None
    try:
        raw = _RawStory.model_validate(data)
    except ValidationError as exc:
        found += [(tuple(error["loc"]), _reason(error)) for error in exc.errors()]
    found += _cross_errors(data)
    ranked = sorted((_locate(data, loc) + (reason,) for loc, reason in found), key=lambda item: item[1])
    first = ranked[0] if ranked else None
    for loc, text, kind in sorted(_file_fields(data), key=lambda item: _locate(data, item[0])[1]):
        field, order = _locate(data, loc)
        if not check_files or (first is not None and order >= first[1]):
            break
        if problem := _file_problem(_resolve(text, base_dir), kind):
            first = (field, order, problem)
            break
    if first is not None:
        raise StoryPromptError(source, first[0], first[2])
    assert raw is not None
    characters = tuple(
        Character(c.name, c.description, _resolve(c.reference_image, base_dir), _resolve(c.reference_voice, base_dir))
        for c in raw.characters or ())
    cast = cast_of([CastMember(c.name, c.reference_image is not None, c.reference_voice is not None)
                    for c in characters])
    shots = []
    for i, s in enumerate(raw.shots):
        dialogue, mode = (s.dialogue or "").strip() or None, s.mode or "t2v"
        shots.append(Shot(
            duration=s.duration, caption=s.caption, dialogue=dialogue,
            speaker=bind_speaker(cast, s.speaker, dialogue=dialogue is not None)[0],
            transition=s.transition or ("FIRST" if i == 0 else "HARD"), boundary_strength=s.boundary_strength,
            mode=mode, first_frame=_resolve(s.first_frame, base_dir),
            subject=bind_subject(cast, s.subject, r2v=mode == "r2v")[0]))
    return StoryPrompt(raw.caption, (raw.negative_caption or "").strip(), characters, tuple(shots))


class _DuplicateKey(ValueError):
    def __init__(self, key: Any, where: str):
        super().__init__(f"duplicate key {key!r}{where}; each key may appear once in a mapping")


def _unique_json_object(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object from its (key, value) pairs, refusing a key given twice (json.loads would keep the last)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key, "")
        out[key] = value
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping key given twice (SafeLoader keeps the last, silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise _DuplicateKey(key, f" (line {mark.line + 1}, column {mark.column + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_text(text: str, kind: str, source: str) -> Any:
    """The data of a story file's text (`kind` "yaml" or "json", YAML through a safe loader only); a syntax problem
    or a key given twice in one mapping raises with field `story`."""
    try:
        if kind == "json":
            return json.loads(text, object_pairs_hook=_unique_json_object)
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        reason = f"invalid {kind.upper()}: {exc}"
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        reason = f"invalid YAML: {getattr(exc, 'problem', None) or exc}{where}"
    raise StoryPromptError(source, "story", reason)


def load_story_prompt(path: str | os.PathLike) -> StoryPrompt:
    """Read and validate a story file (.yaml / .yml / .json) → StoryPrompt; paths inside resolve against the
    file's folder. Any problem raises one StoryPromptError."""
    path = Path(path)
    source = str(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise StoryPromptError(source, "story", f"unsupported extension {path.suffix!r}; expected .yaml, .yml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "file not found" if isinstance(exc, FileNotFoundError) else f"cannot read: {exc}"
        raise StoryPromptError(source, "story", reason) from None
    data = _parse_text(text, kind, source)
    absolute = path.resolve()
    return dataclasses.replace(parse_story_prompt(data, source=source, base_dir=absolute.parent), source=absolute)


def _join(parts: list[str]) -> str:
    """Parts with whitespace runs collapsed and trailing periods dropped, joined by ". " (just " " after a part that
    ends in "!" or "?"); empty parts are skipped."""
    text = ""
    for part in filter(None, (" ".join(p.split()).rstrip(" .") for p in parts)):
        text = part if not text else f"{text}{' ' if text[-1] in '!?' else '. '}{part}"
    return text


def compose_shot_texts(prompt: StoryPrompt) -> list[str]:
    """The text each shot is conditioned on, one per shot.

    Shot 0: "{caption}. {name} is {description}. … {shot caption}" (the global caption, every character introduced
    as "NAME is DESCRIPTION" in story order, then the shot's caption). Later shots: only their own caption; identity
    and setting come from the model's shot memory and the references, never restated. A shot with dialogue gets
    ". speaking: {dialogue}" appended, or ". {speaker} speaking: {dialogue}" when the story has several characters
    and the shot a speaker (with one character who speaks is not in doubt, and the text stays the one the toy world
    trains on). In every part whitespace runs collapse to one space and trailing periods are dropped; parts are
    joined by ". " (just " " after "!" or "?"), with no final period. Deterministic."""
    texts = []
    for i, shot in enumerate(prompt.shots):
        intro = [prompt.caption] + [f"{c.name} is {c.description}" for c in prompt.characters] if i == 0 else []
        named = shot.speaker is not None and len(prompt.characters) > 1
        speech = [f"{shot.speaker + ' ' if named else ''}speaking: {shot.dialogue}"] if shot.dialogue else []
        texts.append(_join(intro + [shot.caption] + speech))
    return texts


def cut_strengths(prompt: StoryPrompt, priors: tuple[float, float, float] = (0.0, 0.4, 1.0),
                  override: float | None = None) -> list[float]:
    """The boundary strength τ of each shot: priors[0] for shot 0; for later shots `override` (the CLI's
    --cut-strength) if given, else the shot's boundary_strength if set, else its transition's prior."""
    if override is not None and (isinstance(override, bool) or not isinstance(override, numbers.Real)
                                 or not 0.0 <= override <= 1.0):
        raise ValueError(f"--cut-strength: expected a number in [0, 1], got {override!r}")
    strengths = [float(priors[0])]
    for shot in prompt.shots[1:]:
        chosen = override if override is not None else shot.boundary_strength
        strengths.append(cut_strength(shot.transition, priors) if chosen is None else float(chosen))
    return strengths


def to_dict(prompt: StoryPrompt, *, base_dir: Path | None = None) -> dict:
    """A JSON-able mapping of `prompt` in the story format. Paths are written relative to `base_dir` (default: the
    source file's folder) when under it, else absolute; parse it back with the same `base_dir`."""
    base = base_dir if base_dir is not None else prompt.source.parent if prompt.source else None
    base = base if base is None else Path(base).resolve()

    def text_of(path: Path) -> str:
        """A path as story text, relative to `base` when under it."""
        return path.relative_to(base).as_posix() if base and path.is_relative_to(base) else str(path)

    def compact(mapping: dict) -> dict:
        """`mapping` without None values, paths as text."""
        return {k: text_of(v) if isinstance(v, Path) else v for k, v in mapping.items() if v is not None}

    return {"version": FORMAT_VERSION, "caption": prompt.caption, "negative_caption": prompt.negative_caption,
            "characters": [compact(dataclasses.asdict(c)) for c in prompt.characters],
            "shots": [compact({**dataclasses.asdict(s), "transition": s.transition.lower()}) for s in prompt.shots]}
