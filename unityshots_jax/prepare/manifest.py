"""The data-preparation input: a JSONL manifest (one story per line) or a folder of story files, read into
frozen `ManifestItem`s.

JSONL, one object per line (blank lines and lines starting with "#" are skipped):

    {"id": "film-0007",                      optional; default: the video's file stem (ids must be unique)
     "video": "clips/film-0007.mp4",          a video file with an audio stream
     "caption": "A rainy street at night",    optional story caption (prepended to shot 0's text, as at generation)
     "shots": [{"start": 0.0, "end": 2.5, "caption": "…", "dialogue": "…", "speaker": "Ana"}, …]
              | "detect",                     detect the shots (`shot_detection`); captions then come from …
     "captions": ["…", "…"],                  … this list, one per detected shot (only with "detect")
     "characters": [{"name": "Ana", "description": "…",
                     "reference_image": "ana.png" | {"from_shot": 2},
                     "reference_voice": "ana.wav" | {"from_shot": 2}}],
     "bucket": "96x64x17"}                    optional WxHxF override of the configured bucket

A folder holds story files (`docs/story_format.md`: .yaml / .yml / .json), each next to its video of the same stem
(.mp4, .mov, .mkv, .webm or .m4v); shot i spans the sum of the earlier durations to that plus its own.

Relative paths resolve against the manifest's folder (the story file's folder). The first structural problem raises
one `ManifestError` naming the file, the line and the field (`shots[1].start`). Problems that need the media (a shot
outside the video, a missing caption, a reference that does not decode) are not manifest errors: the item is skipped
by `clip_items` with the reason, and the rest of the data set goes on.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unityshots_jax.prompt.story_prompt import StoryPromptError, parse_story_prompt

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".m4v")
STORY_SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(ValueError):
    """One structural problem in a manifest: `source` (file), `line` (1-based, None for a story file), `field`
    (a path such as `shots[1].start`) and `reason`; `str(error)` is `"{source}:{line}: {field}: {reason}"`."""

    def __init__(self, source: str, line: int | None, field: str, reason: str):
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {field}: {reason}")
        self.source, self.line, self.field, self.reason = source, line, field, reason


@dataclasses.dataclass(frozen=True)
class ShotSpec:
    """One shot as written: `start` / `end` in seconds on the video's timeline, its caption (None when missing:
    the item is then skipped), optional dialogue and speaker."""

    start: float
    end: float
    caption: str | None
    dialogue: str | None = None
    speaker: str | None = None


@dataclasses.dataclass(frozen=True)
class FromShot:
    """A reference cut from shot `index` of the same video (the paper's leakage-free choice: that shot is then not
    trained as R2V)."""

    index: int


@dataclasses.dataclass(frozen=True)
class CharacterSpec:
    """A character: name, description, and an optional reference portrait / voice (a file or `FromShot`)."""

    name: str
    description: str = ""
    reference_image: Path | FromShot | None = None
    reference_voice: Path | FromShot | None = None


@dataclasses.dataclass(frozen=True)
class ManifestItem:
    """One story to prepare. shots: the given shots, or None to detect them (captions then in `captions`).
    origin: "manifest.jsonl:3" or the story file, for reports."""

    item_id: str
    video: Path
    shots: tuple[ShotSpec, ...] | None
    captions: tuple[str | None, ...] = ()
    caption: str = ""
    characters: tuple[CharacterSpec, ...] = ()
    bucket: str | None = None
    origin: str = ""


_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class _RawFromShot(BaseModel):
    model_config = _STRICT
    from_shot: int = Field(ge=0)


_Ref = str | _RawFromShot | None


class _RawCharacter(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1)
    description: str = ""
    reference_image: _Ref = None
    reference_voice: _Ref = None


class _RawShot(BaseModel):
    model_config = _STRICT
    start: float = Field(ge=0.0, allow_inf_nan=False)
    end: float = Field(gt=0.0, allow_inf_nan=False)
    caption: str | None = None
    dialogue: str | None = None
    speaker: str | None = None


class _RawItem(BaseModel):
    model_config = _STRICT
    id: str | None = Field(default=None, min_length=1)
    video: str = Field(min_length=1)
    caption: str = ""
    shots: list[_RawShot] | Literal["detect"]
    captions: list[str | None] | None = None
    characters: list[_RawCharacter] = []
    bucket: str | None = None


def _field_path(loc: tuple) -> str:
    """pydantic's error location → `shots[1].start` (union-member names dropped)."""
    out = ""
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        elif step in ("list[_RawShot]", "_RawFromShot", "str", "literal['detect']", "function-after") or "[" in step:
            continue
        else:
            out += f".{step}" if out else str(step)
    return out or "(item)"


def _first_error(exc: ValidationError) -> tuple[str, str]:
    """(field, reason) of the first pydantic error; of a union's branches, the one that got furthest (the deepest
    location), so `{"from_shot": -1}` is reported as a bad shot index, not as "not a string"."""
    errors = exc.errors()
    first = _field_path(tuple(errors[0]["loc"]))
    error = max((e for e in errors if _field_path(tuple(e["loc"])).startswith(first)), key=lambda e: len(e["loc"]))
    reason = error["msg"]
    if error["type"] == "missing":
        reason = "required field is missing"
    elif error["type"] == "extra_forbidden":
        reason = "unknown field"
    elif "input" in error and not isinstance(error["input"], (dict, list)):
        reason = f"{reason} (got {error['input']!r})"
    field = _field_path(tuple(error["loc"]))
    if field == "shots" and error["type"] != "missing":
        reason = f"expected a list of shots or \"detect\", got {error.get('input')!r}"
    if field.endswith(("reference_image", "reference_voice")) and error["type"] in ("string_type", "model_type"):
        reason = f"expected a file path or {{\"from_shot\": shot index}}, got {error.get('input')!r}"
    return field, reason


def _resolve(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _reference(value: Any, base: Path) -> Path | FromShot | None:
    if value is None:
        return None
    return FromShot(value.from_shot) if isinstance(value, _RawFromShot) else _resolve(value, base)


def _cross_check(raw: _RawItem) -> tuple[str, str] | None:
    """(field, reason) of the first problem spanning fields, or None."""
    if isinstance(raw.shots, list):
        if not raw.shots:
            return "shots", "needs at least one shot (or \"detect\")"
        for i, shot in enumerate(raw.shots):
            if not shot.end > shot.start:
                return f"shots[{i}].end", f"{shot.end:g} s is not after start {shot.start:g} s"
        if raw.captions is not None:
            return "captions", "only with \"shots\": \"detect\" (given shots carry their own captions)"
    names: set[str] = set()
    for j, character in enumerate(raw.characters):
        if character.name.lower() in names:
            return f"characters[{j}].name", f"duplicate name {character.name!r}"
        names.add(character.name.lower())
        for field in ("reference_image", "reference_voice"):
            ref = getattr(character, field)
            if isinstance(ref, _RawFromShot) and isinstance(raw.shots, list) and ref.from_shot >= len(raw.shots):
                return f"characters[{j}].{field}.from_shot", f"shot {ref.from_shot} does not exist ({len(raw.shots)} shots)"
    return None


def parse_manifest_line(obj: Any, *, base: Path, source: str, line: int) -> ManifestItem:
    """One manifest object → ManifestItem; ManifestError naming `source`, `line` and the field otherwise."""
    if not isinstance(obj, dict):
        raise ManifestError(source, line, "(item)", f"expected a JSON object, got {type(obj).__name__}")
    try:
        raw = _RawItem.model_validate(obj)
    except ValidationError as exc:
        raise ManifestError(source, line, *_first_error(exc)) from None
    problem = _cross_check(raw)
    if problem:
        raise ManifestError(source, line, *problem)
    video = _resolve(raw.video, base)
    shots = None if raw.shots == "detect" else tuple(
        ShotSpec(s.start, s.end, s.caption, s.dialogue, s.speaker) for s in raw.shots)
    characters = tuple(CharacterSpec(c.name, c.description, _reference(c.reference_image, base),
                                     _reference(c.reference_voice, base)) for c in raw.characters)
    return ManifestItem(item_id=raw.id or video.stem, video=video, shots=shots, captions=tuple(raw.captions or ()),
                        caption=raw.caption, characters=characters, bucket=raw.bucket, origin=f"{source}:{line}")


def read_jsonl_manifest(path: str | Path) -> list[ManifestItem]:
    """Every item of a JSONL manifest, in file order; the first problem raises ManifestError (file, line, field)."""
    path = Path(path)
    source, base = str(path), path.resolve().parent
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(source, None, "(file)", f"cannot read: {exc}") from None
    items: list[ManifestItem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(source, number, "(json)", f"not valid JSON: {exc.msg} at column {exc.colno}") from None
        item = parse_manifest_line(obj, base=base, source=source, line=number)
        if item.item_id in seen:
            raise ManifestError(source, number, "id", f"duplicate id {item.item_id!r} (line {seen[item.item_id]})")
        seen[item.item_id] = number
        items.append(item)
    if not items:
        raise ManifestError(source, None, "(file)", "no items")
    return items


def _story_video(path: Path) -> Path:
    for suffix in VIDEO_SUFFIXES:
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate.resolve()
    raise ManifestError(str(path), None, "video", f"no video next to the story file (looked for {path.stem}"
                                                  f"{{{','.join(VIDEO_SUFFIXES)}}})")


def read_story_file(path: Path) -> ManifestItem:
    """A story file (our story format) and its same-stem video → ManifestItem (shots laid end to end from 0 s)."""
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        prompt = parse_story_prompt(data, source=source, base_dir=path.resolve().parent, check_files=False)
    except StoryPromptError as exc:
        raise ManifestError(source, None, exc.field, exc.reason) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ManifestError(source, None, "(file)", f"cannot read or parse: {exc}") from None
    starts = [0.0]
    for shot in prompt.shots:
        starts.append(math.fsum([starts[-1], shot.duration]))
    shots = tuple(ShotSpec(starts[i], starts[i + 1], s.caption, s.dialogue, s.speaker)
                  for i, s in enumerate(prompt.shots))
    characters = tuple(CharacterSpec(c.name, c.description, c.reference_image, c.reference_voice)
                       for c in prompt.characters)
    return ManifestItem(item_id=path.stem, video=_story_video(path), shots=shots, caption=prompt.caption,
                        characters=characters, origin=source)


def read_manifest(path: str | Path) -> list[ManifestItem]:
    """A JSONL manifest file, or a folder of story files (sorted by name) → items; ManifestError on the first
    problem."""
    path = Path(path)
    if not path.is_dir():
        return read_jsonl_manifest(path)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in STORY_SUFFIXES and p.is_file())
    if not files:
        raise ManifestError(str(path), None, "(folder)", f"no story files ({', '.join(STORY_SUFFIXES)})")
    return [read_story_file(p) for p in files]
