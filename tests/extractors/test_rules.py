"""The rule-based extractor: stand-alone, typed statements with time, entities and triples."""

from __future__ import annotations

from datetime import UTC, datetime

from memsvc.extractors.rules import RuleExtractor
from memsvc.model.records import MemoryKind, Scope, StoredMessage

SAID = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)  # a Monday


def turn(text: str, name: str | None = "Caroline", role: str = "user", i: int = 1,
         at: datetime = SAID) -> StoredMessage:
    return StoredMessage(id=f"m{i}", scope=Scope(user_id="u"), role=role, name=name,
                         content=text, timestamp=at, created_at=at)


def extract(*messages: StoredMessage):
    return RuleExtractor().extract(list(messages))


def test_first_person_becomes_the_speaker():
    [c] = extract(turn("I adopted a guinea pig named Oscar last week."))
    assert c.text.startswith("Caroline adopted a guinea pig named Oscar")
    assert " I " not in f" {c.text} "
    assert c.source_message_ids == ["m1"]


def test_possessives_and_verbs_are_rewritten():
    [c] = extract(turn("I love my new job at the library."))
    assert c.text == "Caroline loves their new job at the library."


def test_the_name_is_said_once_then_pronouns():
    [c] = extract(turn("Books guide me, motivate me and help me discover who I am."))
    assert c.text == "Books guide Caroline, motivate them and help them discover who they are."


def test_second_person_resolves_to_the_other_speaker():
    out = extract(turn("Your painting of the lake is beautiful, I really like it.", i=2),
                  turn("I just finished this painting of the lake.", name="Melanie", i=1))
    first = next(c for c in out if c.source_message_ids == ["m2"])
    assert "Melanie's painting" in first.text


def test_relative_date_is_resolved_into_text_and_validity():
    [c] = extract(turn("I went to a LGBTQ support group yesterday and it was powerful."))
    assert c.kind is MemoryKind.EVENT
    assert "(7 May 2023)" in c.text
    assert c.valid_from == datetime(2023, 5, 7, tzinfo=UTC)
    assert c.valid_to is None  # it happened, and stays having happened
    assert c.metadata["time"][0]["label"] == "7 May 2023"


def test_explicit_span_sets_valid_to():
    [c] = extract(turn("I lived in Boston from 2015 to 2019."))
    assert c.valid_from == datetime(2015, 1, 1, tzinfo=UTC)
    assert c.valid_to == datetime(2020, 1, 1, tzinfo=UTC)


def test_kinds():
    kinds = {
        c.text: c.kind
        for c in extract(
            turn("I really love hiking in the mountains.", i=1),
            turn("My favorite book is Charlotte's Web.", i=2),
            turn("I'm a software engineer at Acme Corp.", i=3),
            turn("The trick is to always check the cache before calling the API.", i=4),
            turn("I'm going camping with my kids next month.", i=5),
        )
    }
    assert list(kinds.values()) == [
        MemoryKind.PREFERENCE, MemoryKind.PREFERENCE, MemoryKind.FACT, MemoryKind.PROCEDURE,
        MemoryKind.EVENT,
    ], kinds


def test_tool_failures_become_procedures():
    [c] = extract(turn("Error: the weather API timed out after 30 seconds, retry succeeded.",
                       name=None, role="tool"))
    assert c.kind is MemoryKind.PROCEDURE


def test_small_talk_and_questions_are_dropped():
    assert extract(turn("Hey Mel! Good to see you! How have you been?")) == []
    assert extract(turn("Wow, that's so cool!")) == []
    assert extract(turn("What kind of jobs are you thinking of?")) == []


def test_entities_and_aliases():
    [c] = extract(turn("My dog Oscar loves the beach in Santa Cruz, Mel.", i=1),
                  turn("Hi there, Caroline!", name="Melanie", i=2))[:1]
    assert {"Caroline", "Oscar", "Santa Cruz", "Melanie"} <= set(c.entities)
    assert c.metadata["aliases"]["Mel"] == "Melanie"
    assert c.metadata["aliases"]["Caroline's dog"] == "Oscar"


def test_triples_for_updatable_statements():
    cases = {
        "I live in Boston with my partner.": ("Caroline", "lives_in", "Boston"),
        "We just moved to Denver!": ("Caroline", "moved_to", "Denver"),
        "I started a new job at Google last month.": ("Caroline", "works_at", "Google"),
        "My favorite color is green.": ("Caroline", "favorite_color", "green"),
        "I'm not into sushi anymore.": ("Caroline", "dislikes", "sushi"),
        "We had to cancel our trip to Paris.": ("Caroline", "cancelled", "trip to Paris"),
        "I'm planning a trip to Paris in June.": ("Caroline", "plans", "a trip to Paris"),
    }
    for text, (subject, predicate, obj) in cases.items():
        [c] = extract(turn(text))
        if predicate == "moved_to":
            predicate = "lives_in"
        assert (c.subject, c.predicate, c.object) == (subject, predicate, obj), text


def test_unnamed_user_is_called_user():
    [c] = extract(turn("I live in Lisbon now.", name=None))
    assert c.text == "User lives in Lisbon now."
    assert c.subject == "User"


def test_an_answer_carries_the_question_it_answers():
    out = extract(turn("Which book has been your favorite guide?", name="Melanie", i=1),
                  turn("It was Becoming Nicole, a true story about a trans girl.", i=2))
    [answer] = [c for c in out if c.source_message_ids == ["m2"]]
    assert answer.text.startswith("It was Becoming Nicole")
    assert answer.text.endswith('(answering Melanie: "Which book has been Caroline\'s favorite '
                                'guide?")')
    assert answer.metadata["answers"].startswith("Which book")


def test_a_statement_after_a_statement_gets_no_question():
    out = extract(turn("I painted a lake sunrise last year.", name="Melanie", i=1),
                  turn("It was Becoming Nicole, a true story about a trans girl.", i=2))
    assert not any("answering" in c.text for c in out)
    assert not any("answers" in c.metadata for c in out)


def test_a_tool_failure_then_fix_becomes_a_lesson():
    trajectory = [
        turn("Get the weather in Paris.", name=None, role="user", i=1),
        turn('weather_api(city="Paris")', name=None, role="assistant", i=2),
        turn("Error 400: invalid city code, use ISO country suffix", name="weather_api",
             role="tool", i=3),
        turn('Retrying with weather_api(city="Paris,FR")', name=None, role="assistant", i=4),
        turn('{"temp_c": 18, "sky": "clear"}', name="weather_api", role="tool", i=5),
    ]
    lessons = [c for c in extract(*trajectory) if c.metadata.get("lesson")]
    [lesson] = lessons
    assert lesson.kind is MemoryKind.PROCEDURE
    assert lesson.text.startswith('When weather_api failed with "Error 400: invalid city code')
    assert 'Paris,FR' in lesson.text
    assert lesson.source_message_ids == ["m3", "m4", "m5"]


def test_a_failure_never_fixed_is_no_lesson():
    trajectory = [
        turn("Error: connection refused", name="db", role="tool", i=1),
        turn("Trying again.", name=None, role="assistant", i=2),
        turn("Error: connection refused", name="db", role="tool", i=3),
    ]
    assert not [c for c in extract(*trajectory) if c.metadata.get("lesson")]


def test_questions_quoted_for_context_keep_their_grammar():
    out = extract(turn("Do you have any experience with adoption?", name="Melanie", i=1),
                  turn("No, but a buddy of mine adopted last year.", i=2))
    [answer] = out
    assert '(answering Melanie: "Does Caroline have any experience with adoption?")' in answer.text
    assert "(2022)" in answer.text


def test_a_short_reply_is_kept_with_its_question():
    out = extract(turn("Do you prefer Tokyo or Kyoto?", name="Sam", role="assistant", i=1),
                  turn("Kyoto.", name=None, i=2))
    [answer] = out
    assert answer.text == 'Kyoto. (answering Sam: "Does User prefer Tokyo or Kyoto?")'
    assert extract(turn("How was the trip?", name="Sam", i=1),
                   turn("Thanks!", name=None, i=2)) == []


def test_you_as_subject_agrees_with_the_addressee():
    [c] = extract(turn("Hi Sam.", name="Sam", role="user", i=1),
                  turn("I will remember that you prefer quiet places, thank you so much.",
                       name="Assistant", role="assistant", i=2))
    assert c.text == "Assistant will remember that Sam prefers quiet places, thank Sam so much."


def test_until_closes_the_validity():
    [c] = extract(turn("I'm staying with my sister in Lisbon until next Friday."))
    assert c.valid_from == SAID
    assert c.valid_to == datetime(2023, 5, 13, tzinfo=UTC)  # SAID is Monday 8 May


def test_present_tense_verbs_ending_in_ed_agree_with_the_speaker() -> None:
    from memsvc.extractors.statements import resolve_persons, third_person

    assert third_person("feed") == "feeds" and third_person("need") == "needs"
    assert third_person("agreed") == "agreed" and third_person("painted") == "painted"
    assert resolve_persons("I feed Oscar carrots", "Caroline").startswith("Caroline feeds")
