"""The kinds of event the loop logs (one enum, so a kind is written and read under the same name),
and the line that describes one to an operator."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any


class EventKind(str, Enum):
    """Every ``events.kind`` value; the store refuses any other."""

    BOOTSTRAP = "bootstrap"  # a first champion was trained
    REGISTRATION = "registration"  # a version was published (registry)
    PROMOTION = "promotion"  # the champion alias moved (registry)
    DEPLOYMENT = "deployment"  # a canary or shadow alias moved or ended (registry)
    ROLLBACK = "rollback"  # an alias moved back (registry)
    CANARY_PROMOTION = "canary_promotion"  # the canary rule promoted the canary (worker)
    CANARY_ROLLBACK = "canary_rollback"  # the canary rule removed the canary (worker)
    DATA_DRIFT = "data_drift"  # a data-drift test fired (worker)
    PERFORMANCE_DRIFT = "performance_drift"  # the error-stream detector fired (worker)
    TRAIN_REQUEST = "train_request"  # someone asked to train now (HTTP, CLI)
    TRAINING = "training"  # a training attempt started or failed (worker)
    GATE = "gate"  # a candidate was judged (worker)
    WORKER = "worker"  # a worker started, stopped, took or lost the lease
    RETENTION = "retention"  # samples or artifacts were deleted (worker)
    SERVER = "server"  # a server started degraded (e.g. fell back from a corrupted champion)

    def __str__(self) -> str:
        return self.value


def describe(kind: str, payload: Mapping[str, Any]) -> str:
    """One line an operator reads: what happened and why (``lifelong events``)."""
    p = payload
    if kind == EventKind.GATE:
        waiting = p.get("waiting_classes") or {}
        wait = "".join(f" (note: new class {c} waits for labels, {n} so far)" for c, n in waiting.items())
        if not p.get("trained", True):
            return "nothing trained: " + "; ".join(p.get("reasons", [])) + wait
        f = p.get("figures", {})
        if p.get("recalled"):  # a former champion serves again: the concept it learned returned
            r = p["recalled"]
            return (f"recalled v{r['version']}: a former champion, new acc {_num(r['figures']['new_accuracy'])} on "
                    f"{window_text(p.get('holdout'))} against the candidate trained from v{p.get('parent')}'s "
                    f"{_num(r['candidate_new_accuracy'])} (McNemar p {_num(r['p_value'], '.2g')}) and champion "
                    f"{_num(r['figures']['champion_new_accuracy'])}: a returning concept; the candidate was not "
                    "published")  # fmt: skip
        acc = f"new acc {_num(f.get('new_accuracy'))} (champion {_num(f.get('champion_new_accuracy'))})"
        head = f"passed: v{p.get('version')}" if p.get("passed") else "failed"
        why = "" if p.get("passed") else ": " + "; ".join(p.get("reasons", []))
        note = "".join(f" (note: {w})" for w in p.get("warnings", [])) + wait
        if p.get("classes_added"):  # the head grew: a deployment's label space is news to its operator
            note += f" (classes {', '.join(map(str, p['classes_added']))} added)"
        judged = f", judged on {window_text(p['holdout'])}" if p.get("holdout") else ""
        return (f"{head} from v{p.get('parent')} trained on samples {window_text(p.get('window'))}{judged}, "
                f"{acc}{why}{note}")  # fmt: skip
    if kind == EventKind.DATA_DRIFT:
        d = p.get("details", {})
        if "tokens" in d:  # token frequencies (a text model's inputs), and words per row where tested
            listed = ", ".join(str(t) for t in d["tokens"][:8])
            shares = (f"token shares moved by {_num(p.get('score'))} (total variation, p "
                      f"{_num(d.get('p_tokens', p.get('p_value')), '.2g')}), most moved ids: {listed}")  # fmt: skip
            per_row = d.get("tokens_per_row")
            if d.get("p_length") is not None and per_row:
                length = (f"words per row {_num(per_row[0], '.1f')} -> {_num(per_row[1], '.1f')} "
                          f"(p {_num(d['p_length'], '.2g')})")  # fmt: skip
                parts = [length, shares] if d["p_length"] < d.get("p_tokens", 1.0) else [shares, length]
                shares = "; ".join(parts)
            return f"{p.get('monitor')}: {shares}, from sample {p.get('first')}"
        if "n_drifted" not in d:  # a multivariate test (MMD): one score for all features
            return (f"{p.get('monitor')}: score {_num(p.get('score'))} (threshold {_num(p.get('threshold'))}), "
                    f"from sample {p.get('first')}")  # fmt: skip
        names = d.get("drifted_feature_names") or d.get("drifted_features", [])
        listed = ", ".join(str(n) for n in names[:8]) + (" ..." if len(names) > 8 else "")
        return (f"{p.get('monitor')}: {d.get('n_drifted', '?')} of {d.get('n_features', '?')} features drifted "
                f"({listed}), p {_num(p.get('p_value'), '.2g')}, from sample {p.get('first')}")  # fmt: skip
    if kind == EventKind.PERFORMANCE_DRIFT:
        if "error_before" not in p:  # an online detector's alarm (page-hinkley, adwin, ddm)
            d = p.get("details", {})
            if d.get("recent_error_rate") is not None:
                return (f"{p.get('monitor')}: alarm at sample {p.get('at')}, error rate "
                        f"{_num(d['recent_error_rate'])} over the last {d.get('recent_n')} judged predictions")  # fmt: skip
            return f"{p.get('monitor')}: alarm at sample {p.get('at')}"
        return (f"{p.get('detector')}: error {_num(p.get('error_before'))} -> {_num(p.get('error_after'))} "
                f"from sample {p.get('first')}")  # fmt: skip
    if kind == EventKind.TRAINING:
        if p.get("state") == "failed":
            retry = (
                f" (failure {p['failures']} in a row; next try in {p['retry_in']:g} s)"
                if "retry_in" in p
                else ""
            )
            return f"failed: {p.get('error')}{retry}"
        if p.get("state") == "interrupted":
            by = str(p.get("by"))  # most reasons say it already (the stop, a lost lease)
            return f"interrupted: {by}" + (
                ""
                if "nothing published" in by or "nothing was published" in by
                else "; nothing was published"
            )
        since = p.get("since")  # a detected change: the window starts after it
        start = f", window from sample {since + 1}" if isinstance(since, int) else ""
        nproc = p.get("nproc") or 1  # a job under torchrun: said, as its CPU is spent in that many processes
        where = f", {nproc} processes on {p.get('device', 'cpu')}" if nproc > 1 else ""
        return f"{p.get('state')}: {p.get('reason')} ({p.get('mode')}{start}{where})"
    if kind in (EventKind.PROMOTION, EventKind.DEPLOYMENT):
        share = f" at {p['share']:.0%}" if isinstance(p.get("share"), float) else ""
        to = "unset" if p.get("version") is None else f"v{p['version']}"
        was_at = f" at {p['previous_share']:.0%}" if isinstance(p.get("previous_share"), float) else ""
        was = "" if p.get("previous") is None else f" (was v{p['previous']}{was_at})"
        why = f": {p['reason']}" if p.get("reason") else ""
        return f"{p.get('alias')} -> {to}{share}{was}{why}"
    if kind == EventKind.ROLLBACK:
        return (
            f"{p.get('alias')}: v{p.get('from')} -> {'unset' if p.get('to') is None else 'v' + str(p['to'])}"
        )
    if kind == EventKind.REGISTRATION:
        parent = "a first version" if p.get("parent") is None else f"from v{p['parent']}"
        return f"v{p.get('version')} published, {parent} ({p.get('strategy')})"
    if kind == EventKind.BOOTSTRAP:
        if not p.get("n"):
            return f"v{p.get('version')} untrained (no bootstrap data)"
        return f"v{p.get('version')} bootstrapped from {p['n']} samples of {p.get('data')}"
    if kind in (EventKind.CANARY_PROMOTION, EventKind.CANARY_ROLLBACK):
        p_value = f", p {_num(p['p_value'], '.2g')} ({p.get('test')})" if p.get("p_value") is not None else ""
        return (f"canary v{p.get('canary')} {_num(p.get('canary_accuracy'))} on {p.get('canary_labelled')} "
                f"against champion v{p.get('champion')} {_num(p.get('champion_accuracy'))} on "
                f"{p.get('champion_labelled')}{p_value}")  # fmt: skip
    if kind == EventKind.TRAIN_REQUEST:
        return str(p.get("reason", ""))
    if kind == EventKind.WORKER:  # read as a key dump: "state acquired, holder ..., took_over_from ..."
        state, holder = p.get("state"), p.get("holder")
        if state == "acquired":
            took = f", taking over from {p['took_over_from']}" if p.get("took_over_from") else ""
            return f"{holder} took the worker lease (policy {p.get('policy')}){took}"
        if state == "lost":
            return f"{holder} lost the worker lease" + (f" to {p['to']}" if p.get("to") else "")
        if state == "stopped":
            return f"{holder} stopped and gave the lease back"
    return ", ".join(f"{k} {v}" for k, v in p.items() if not isinstance(v, dict | list))[:200]


def _num(x: Any, spec: str = ".3f") -> str:
    return "-" if not isinstance(x, int | float) else format(x, spec)


def window_text(w: Any) -> str:
    """A window of sample ids as the events print it, ``first-last``."""
    return f"{w[0]}-{w[1]}" if isinstance(w, list | tuple) and len(w) == 2 else "-"
