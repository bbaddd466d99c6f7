"""Which character each shot's references come from: its `speaker` (the voice) and its `subject` (the portrait).

A story may have several characters, each with its own portrait and voice; the model takes one portrait and one
voice per shot (paper Eq. 1 has one X_ref and one A_ref), so every shot is bound to the characters whose references
it uses, and one character's reference is never applied to another's shot. The rules (docs/story_format.md,
"Characters and references"):

- `speaker` (a shot with dialogue): as written, else the story's only character with a reference voice; with
  several voiced characters the shot must say which one speaks. Allowed only on a shot with dialogue.
- `subject` (whose portrait an r2v shot uses; any shot may name one): as written, else, for an r2v shot, the
  story's only character with a reference image; with several the r2v shot must say whose. An r2v shot's subject
  must have a portrait.
- The references a shot carries (`reference_owners`): its portrait is its subject's (none if the subject has
  none), or, without a subject, the story's only portrait; its voice is its speaker's when it has dialogue (none if
  the speaker has no voice or no character has one), else its subject's (none if the subject has none), else the
  story's only voice. The model looks at the portrait only in r2v shots.

Names match characters ignoring case and are stored as the character spells it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unityshots_jax.prompt.story_prompt import StoryPrompt


@dataclasses.dataclass(frozen=True)
class CastMember:
    """A character as the binding rules see it: its `name` as written, whether it has a portrait and a voice."""

    name: str
    has_portrait: bool
    has_voice: bool


def cast_of(members: list[CastMember]) -> dict[str, CastMember]:
    """The characters by lower-cased name, in story order (the first of two equal names wins; the duplicate is
    reported elsewhere)."""
    cast: dict[str, CastMember] = {}
    for member in members:
        cast.setdefault(member.name.lower(), member)
    return cast


def _names(members: list[CastMember]) -> str:
    return ", ".join(m.name for m in members)


def _lookup(cast: dict[str, CastMember], name: str) -> tuple[CastMember | None, str | None]:
    """(the character called `name`, None) or (None, why not)."""
    member = cast.get(name.lower())
    if member is not None:
        return member, None
    known = f"characters: {_names(list(cast.values()))}" if cast else "the story has no characters"
    return None, f"{name!r} is not a character of this story ({known})"


def bind_speaker(cast: dict[str, CastMember], written: str | None, *, dialogue: bool) -> tuple[str | None, str | None]:
    """(speaker name or None, problem or None) of a shot whose `speaker` field is `written` (None: omitted)."""
    if written is not None:
        if not dialogue:
            return None, "allowed only when the shot has dialogue"
        member, problem = _lookup(cast, written)
        return (member.name if member else None), problem
    if not dialogue:
        return None, None
    voiced = [m for m in cast.values() if m.has_voice]
    if len(voiced) > 1:
        return None, f"{len(voiced)} characters have a reference voice ({_names(voiced)}); say which one speaks"
    return (voiced[0].name if voiced else None), None


def bind_subject(cast: dict[str, CastMember], written: str | None, *, r2v: bool) -> tuple[str | None, tuple[str, str] | None]:
    """(subject name or None, (field "subject" | "mode", problem) or None) of a shot whose `subject` field is
    `written` (None: omitted); `r2v`: the shot's mode is r2v, which needs a portrait."""
    if written is not None:
        member, problem = _lookup(cast, written)
        if member is None:
            return None, ("subject", problem)
        if r2v and not member.has_portrait:
            return None, ("subject", f"{member.name} has no reference_image; an r2v shot uses its subject's portrait")
        return member.name, None
    if not r2v:
        return None, None
    portraits = [m for m in cast.values() if m.has_portrait]
    if not portraits:
        return None, ("mode", "r2v needs a character with a reference_image")
    if len(portraits) > 1:
        reason = f"{len(portraits)} characters have a reference image ({_names(portraits)}); say whose portrait"
        return None, ("subject", reason + " this r2v shot uses")
    return portraits[0].name, None


def reference_owners(prompt: StoryPrompt) -> tuple[tuple[str | None, str | None], ...]:
    """(portrait owner, voice owner) per shot of a validated story: the names of the characters whose reference
    image and reference voice the shot carries, None for none (rules in the module docstring)."""
    by_name = {c.name: c for c in prompt.characters}
    portraits = [c.name for c in prompt.characters if c.reference_image is not None]
    voices = [c.name for c in prompt.characters if c.reference_voice is not None]
    only_portrait = portraits[0] if len(portraits) == 1 else None
    only_voice = voices[0] if len(voices) == 1 else None
    owners = []
    for shot in prompt.shots:
        subject, speaker = shot.subject, shot.speaker
        portrait = only_portrait if subject is None else subject if by_name[subject].reference_image else None
        if shot.dialogue is not None:
            voice = speaker if speaker is not None and by_name[speaker].reference_voice else None
        else:
            voice = only_voice if subject is None else subject if by_name[subject].reference_voice else None
        owners.append((portrait, voice))
    return tuple(owners)
