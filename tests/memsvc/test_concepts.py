"""Concepts: the content words the entity graph links a memory to (memsvc.text.concepts)."""

from __future__ import annotations

from memsvc.text.concepts import MAX_CONCEPTS, concept_of, concepts_of, stem


def test_inflections_of_a_word_share_one_concept() -> None:
    assert {stem(w) for w in ("paint", "paints", "painted", "painting", "paintings")} == {"paint"}
    assert {stem(w) for w in ("camp", "camped", "camping")} == {"camp"}
    assert stem("running") == stem("run")
    assert stem("activities") == "activity"
    assert concept_of("de-stress") == concept_of("destress")


def test_function_and_general_words_and_names_are_no_concepts() -> None:
    text = "Melanie: Thanks, Caroline! I really love the pottery class, it's great."
    assert concepts_of(text, ["Melanie", "Caroline"]) == ["pottery", "class"]
    assert concept_of("would") is None and concept_of("really") is None


def test_a_memory_keeps_a_bounded_number_of_concepts() -> None:
    text = " ".join(f"word{chr(97 + i)}xyz" for i in range(3 * MAX_CONCEPTS))
    assert len(concepts_of(text)) == MAX_CONCEPTS
