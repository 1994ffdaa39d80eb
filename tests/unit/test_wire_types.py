"""Every type that travels between workers, CLIs and histories survives a rolling deploy:
a payload from a newer sender, with a field this code does not know, still decodes."""

from __future__ import annotations

import inspect
import json
from datetime import timedelta
from types import ModuleType
from typing import get_args, get_origin

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import activities.payloads
import model_migration.domain.commands
import model_migration.domain.deadlines
import model_migration.domain.escalation
import model_migration.domain.models
import workflows.messages
from model_migration.converter import data_converter
from model_migration.domain.commands import MetricResult
from model_migration.domain.deadlines import StagePlan
from model_migration.domain.evaluation import KNOWN_METRICS, EvaluationSpec
from model_migration.domain.gate import GateConfig
from model_migration.domain.models import FeatureSpec, ModelDefinition
from workflows.messages import MigrationInput, TournamentInput, Tunables

WIRE_MODULES: tuple[ModuleType, ...] = (
    workflows.messages, model_migration.domain.commands, activities.payloads, model_migration.domain.models,
    model_migration.domain.deadlines, model_migration.domain.escalation,
)
WIRE_TYPES = sorted(
    {
        obj for module in WIRE_MODULES for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__
    },
    key=lambda cls: cls.__name__,
)

_words = st.text(alphabet="abcdefgh_", min_size=1, max_size=8)


_finite = st.floats(allow_nan=False, allow_infinity=False)
_positive = st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=30))
#: Types whose validators need values drawn within their rules.
SPECIAL: dict[type[BaseModel], st.SearchStrategy[BaseModel]] = {
    MetricResult: st.builds(MetricResult, baseline=_finite, candidate=_finite),
    GateConfig: st.builds(GateConfig),  # its defaults: the gate's own rules are tested in test_gate
    TournamentInput: st.builds(
        TournamentInput, feature=st.deferred(lambda: model_of(FeatureSpec)),
        baseline=st.deferred(lambda: model_of(ModelDefinition)).map(lambda m: m.model_copy(update={"gitlab_identifier": "baseline"})),
        candidates=st.lists(st.deferred(lambda: model_of(ModelDefinition)), min_size=1, max_size=2).map(
            lambda ms: tuple(m.model_copy(update={"gitlab_identifier": f"candidate-{i}"}) for i, m in enumerate(ms))),
        tunables=st.deferred(lambda: model_of(Tunables)),
    ),
    EvaluationSpec: st.builds(
        EvaluationSpec, margins=st.dictionaries(st.sampled_from(KNOWN_METRICS), st.floats(min_value=0.01, max_value=500), min_size=1),
    ),
    StagePlan: st.builds(StagePlan, implement=_positive, evaluate=_positive, rollout=_positive, cleanup=_positive),
    MigrationInput: st.builds(
        MigrationInput,
        features=st.lists(st.deferred(lambda: model_of(FeatureSpec)), min_size=1, max_size=2, unique_by=lambda f: f.name).map(tuple),
        model=st.deferred(lambda: model_of(ModelDefinition)), tunables=st.deferred(lambda: model_of(Tunables)),
    ),
}


def model_of(cls: type[BaseModel]) -> st.SearchStrategy[BaseModel]:
    """``builds(cls)``, drawing nested models and the fields whose default comes from a factory."""
    if cls in SPECIAL:
        return SPECIAL[cls]
    drawn: dict[str, st.SearchStrategy[object]] = {}
    for name, field in cls.model_fields.items():
        annotation = field.annotation
        args = get_args(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            drawn[name] = st.deferred(lambda a=annotation: model_of(a))
        elif get_origin(annotation) is list and args and issubclass(args[0], BaseModel):
            drawn[name] = st.lists(st.deferred(lambda a=args[0]: model_of(a)), max_size=2)
        elif field.default_factory is not None:
            drawn[name] = st.from_type(annotation)  # type: ignore[arg-type]
    if cls is Tunables:  # its ladders and timeouts have rules of their own
        drawn.update(activity_timeout=_positive, merge_poll=_positive)
        drawn.pop("ladder", None)
        drawn.pop("rollout_ladder", None)
    return st.builds(cls, **drawn)


def test_every_wire_type_ignores_unknown_fields() -> None:
    """No wire type forbids extra fields (the default is to ignore them)."""
    assert len(WIRE_TYPES) > 40
    forbidding = [cls.__name__ for cls in WIRE_TYPES if cls.model_config.get("extra") == "forbid"]
    assert forbidding == []


@pytest.mark.parametrize("cls", WIRE_TYPES, ids=lambda cls: cls.__name__)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_a_payload_with_an_unknown_field_decodes(cls: type[BaseModel], data: st.DataObject) -> None:
    """Encoded by a newer sender with one more field, the payload decodes to the same value here."""
    value = data.draw(model_of(cls))
    raw = json.loads(value.model_dump_json())
    raw["field_from_a_newer_release"] = {"anything": [1, 2]}
    [payload] = data_converter.payload_converter.to_payloads([raw])
    [decoded] = data_converter.payload_converter.from_payloads([payload], [cls])
    assert decoded == value
