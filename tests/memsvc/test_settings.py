"""Settings: every `MEMSVC_*` variable is read in one place, documented in one table, and
reaches what it configures (the write path, search plans chosen by name)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from memsvc import Memory
from memsvc.extractors.llm import LLMExtractor
from memsvc.extractors.rules import RuleExtractor
from memsvc.model.errors import InvalidInputError
from memsvc.model.settings import ENV_VARS, Settings
from memsvc.write.factory import build_decider, build_extractor
from memsvc.write.llm_decider import LLMDecider

ROOT = Path(__file__).parents[2]
SAMPLES = {
    "MEMSVC_DB": ("/tmp/x/m.db", Path("/tmp/x/m.db")),
    "MEMSVC_TENANT": ("acme", "acme"),
    "MEMSVC_EMBEDDER": ("/models/e5", "/models/e5"),
    "MEMSVC_EMBED_THREADS": ("3", 3),
    "MEMSVC_EMBED_PRECISION": ("BF16", "bf16"),
    "MEMSVC_QUERY_CACHE_SIZE": ("17", 17),
    "MEMSVC_MAX_TEXT_BYTES": ("1000", 1000),
    "MEMSVC_VECTOR_WEIGHT": ("0.25", 0.25),
    "MEMSVC_BM25_WEIGHT": ("2", 2.0),
    "MEMSVC_RRF_K": ("60", 60),
    "MEMSVC_EPISODE_CONTEXT_WEIGHT": ("0.25", 0.25),
    "MEMSVC_EXTRACTOR": ("llm", "llm"),
    "MEMSVC_DECIDER": ("LLM", "llm"),
    "MEMSVC_DECIDER_CONSULT_ABOVE": ("0.5", 0.5),
    "MEMSVC_LLM_BASE_URL": ("http://llm:9000/v1", "http://llm:9000/v1"),
    "MEMSVC_LLM_MODEL": ("qwen", "qwen"),
    "MEMSVC_LLM_API_KEY": ("sk-1", "sk-1"),
    "MEMSVC_LLM_TIMEOUT": ("7.5", 7.5),
    "MEMSVC_VLLM_PORT": ("9999", 9999),
    "MEMSVC_VLLM_DEVICE": ("cpu", "cpu"),
    "MEMSVC_VLLM_VENV": ("/opt/venv", Path("/opt/venv")),
    "MEMSVC_VLLM_MODEL_DIR": ("/opt/model", Path("/opt/model")),
    "MEMSVC_CACHE_DIR": ("/var/cache/m", Path("/var/cache/m")),
    "MEMSVC_GC_FREEZE": ("off", False),
}


def test_every_variable_is_read_into_its_field() -> None:
    assert set(SAMPLES) == {var for var, _, _ in ENV_VARS}
    settings = Settings.from_env({var: raw for var, (raw, _) in SAMPLES.items()})
    for var, field, _ in ENV_VARS:
        assert getattr(settings, field) == SAMPLES[var][1], var
    assert settings.describe()["llm_api_key"] == "***"


def test_unset_and_empty_variables_keep_the_defaults_and_arguments_win() -> None:
    defaults = Settings()
    assert Settings.from_env({}, db_path=defaults.db_path) == defaults
    assert Settings.from_env({"MEMSVC_RRF_K": "", "MEMSVC_EXTRACTOR": ""},
                             db_path=defaults.db_path) == defaults
    chosen = Settings.from_env({"MEMSVC_DB": "/a.db", "MEMSVC_TENANT": "t"}, db_path="/b.db",
                               tenant=None)
    assert chosen.db_path == Path("/b.db") and chosen.tenant == "t"
    assert defaults.llm_url == "http://127.0.0.1:8765"
    assert Settings(vllm_port=9000).llm_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize("var, raw", [("MEMSVC_RRF_K", "ten"), ("MEMSVC_LLM_TIMEOUT", "soon"),
                                      ("MEMSVC_EXTRACTOR", "gpt"), ("MEMSVC_DECIDER", "yes"),
                                      ("MEMSVC_VLLM_DEVICE", "tpu"),
                                      ("MEMSVC_GC_FREEZE", "maybe")])
def test_a_bad_value_is_refused_naming_the_variable(var: str, raw: str) -> None:
    with pytest.raises(InvalidInputError, match=var):
        Settings.from_env({var: raw})


# The integrity key and where it and the witness live are read by storage/integrity itself:
# a secret key must never sit in the Settings value that reports print (DEVELOPERS.md,
# "Tamper evidence"); the agmi harness points them at its own temp dirs.
INTEGRITY_VARIABLES = {"MEMSVC_INTEGRITY_KEY", "MEMSVC_CONFIG_DIR", "MEMSVC_WITNESS_DIR"}
INTEGRITY_READERS = {"storage/integrity/keys.py", "storage/integrity/witness.py",
                     "evals/agmi_atrest.py"}


def test_no_other_module_reads_memsvc_variables() -> None:
    reads = re.compile(r"""(environ|getenv)\b[^\n]{0,20}["'](MEMSVC_\w+)""")
    named = re.compile(r"""["'](MEMSVC_\w+)["']""")
    offenders = []
    for folder in ("memsvc", "serving", "extractors", "retrievers", "storage", "evals"):
        for path in (ROOT / folder).rglob("*.py"):
            where = str(path.relative_to(ROOT))
            if path.name == "settings.py":
                continue
            text = path.read_text()
            read = {m.group(2) for m in reads.finditer(text)}
            if where in INTEGRITY_READERS:
                read |= set(named.findall(text))
                read -= INTEGRITY_VARIABLES
            if read:
                offenders.append((where, sorted(read)))
    assert offenders == []


def test_the_developers_table_documents_every_setting() -> None:
    text = (ROOT / "DEVELOPERS.md").read_text()
    section = text[text.index("\n## Settings"):]
    rows = re.findall(r"^\| `(MEMSVC_\w+)` \| `(\w+)` \|", section, flags=re.M)
    assert sorted(rows) == sorted((var, field) for var, field, _ in ENV_VARS)
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert fields == {field for _, field in rows}


def test_the_write_path_follows_the_settings() -> None:
    rules = Settings()
    assert isinstance(build_extractor(rules), RuleExtractor)
    assert build_decider(rules) is None
    llm = Settings(extractor="llm", decider="llm", llm_base_url="http://127.0.0.1:9/v1",
                   llm_model="m")
    extractor = build_extractor(llm)
    assert isinstance(extractor, LLMExtractor) and isinstance(extractor.fallback, RuleExtractor)
    assert extractor.client.base_url == "http://127.0.0.1:9" and extractor.version == "1:m"
    assert isinstance(build_decider(llm), LLMDecider)


def test_weights_apply_to_plans_chosen_by_name(tmp_path: Path, embedder) -> None:
    settings = Settings(db_path=tmp_path / "w.db", vector_weight=0.25, bm25_weight=3.0, rrf_k=4)
    with Memory(settings=settings, embedder=embedder) as m:
        m.add("I live in Boston.", user_id="u")
        for plan in (None, "balanced", "fast", "deep"):
            used = m.search("Where do I live?", user_id="u", plan=plan).plan
            assert used["channels"]["vector"]["weight"] == 0.25, plan
            assert used["channels"]["bm25"]["weight"] == 3.0, plan
            assert used["rrf_k"] == 4, plan
        deep = m.search("Where do I live?", user_id="u", plan="deep").plan
        assert deep["channels"]["vector"]["k"] == 100  # the recipe itself is kept
