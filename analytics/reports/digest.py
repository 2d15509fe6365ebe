"""The digest: what changed and what to do first, short enough for a mail or a chat message.

A formatter over the one analysis (:func:`analytics.analysis.analyse_fleet`): the findings and the headline
come from there; nothing here judges a VM. Content: the headline by kind, the findings that are new since the
last digest sent, the top 10 VMs by saving (with kind and risk), the realised savings of applied resizes and
stops, and the backups that are overdue. Rendered as plain text (the mail's text part and the webhook's
``text``) and as a small HTML part (no scripts, no charts).

The record of what was sent sits in the store's meta documents under ``DIGEST_META_KEY`` (see
:func:`sent_record`): the finding keys of the last digest delivered, so "new" means new since then, and per
channel the id of the digest it last received, so a restart never sends the same digest twice.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from analytics.analysis import AnalysisOptions, FleetAnalysis, analyse_fleet
from analytics.backups import BackupFinding, check_backups
from analytics.findings.context import FleetCatalogue
from analytics.findings.finding import VmFinding
from analytics.findings.headline import SAVING_KINDS, Headline, headline_saving, saving_kind
from analytics.realised import RealisedSaving, realised_savings_for_store
from collector.store.base import TimeSeriesStore
from collector.store.jsonmeta import read_json_meta
from core.settings import Settings

#: Store meta key of the digest record (``{"last": {...}, "channels": {...}}``).
DIGEST_META_KEY = "digest"
TOP_N = 10
#: New findings listed by name; more are counted.
NEW_LISTED = 20
#: Findings that ask nothing of anyone, so they are never "new".
QUIET_FINDINGS = frozenset({"optimized", "insufficient-data"})


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One VM's line: its finding, the headline kinds its saving falls under, the saving and the risk."""

    name: str
    uuid: str
    finding: str
    kinds: tuple[str, ...]  # of SAVING_KINDS; empty for a finding that saves nothing (an upsize, contention)
    monthly_saving: float  # what it adds to the gross headline, per 720-hour month
    risk: str
    reason: str
    link: str  # the VM's dashboard page; "" without [dashboard] public_url

    @property
    def kind_text(self) -> str:
        return " + ".join(self.kinds) if self.kinds else "-"


@dataclass(frozen=True, slots=True)
class Digest:
    """One digest: the analysis' figures plus what is new since ``previous_id`` (None: the first digest)."""

    digest_id: str
    as_of: datetime
    currency: str
    headline: Headline
    top: tuple[DigestItem, ...]
    new: tuple[DigestItem, ...]
    keys: tuple[str, ...]  # the finding keys of this digest ("uuid:finding"), stored once it is sent
    realised: tuple[RealisedSaving, ...]
    backups_overdue: tuple[BackupFinding, ...]
    previous_id: str | None
    dashboard_url: str = ""

    @property
    def largest(self) -> DigestItem | None:
        return self.top[0] if self.top else None

    @property
    def largest_names(self) -> str:
        """The VM with the largest saving; VMs that tie with it to the cent are named too."""
        big = self.largest
        if big is None:
            return ""
        names = [i.name for i in self.top if round(i.monthly_saving, 2) == round(big.monthly_saving, 2)]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    @property
    def realised_total(self) -> float:
        return sum(s.saving for s in self.realised)

    def subject(self) -> str:
        """The mail's subject: the gross saving and the VM with the largest one."""
        cur = self.currency
        head = f"rightsizer digest: {self.headline.gross_monthly_savings:.2f} {cur}/month to save"
        big = self.largest
        return f"{head}; largest: {self.largest_names} {big.monthly_saving:.2f} {cur}" if big is not None else head

    def text(self) -> str:
        """The digest as plain text (the mail's text part and the webhook's ``text``)."""
        cur = self.currency
        out = [f"rightsizer digest, data as of {self.as_of:%Y-%m-%d %H:%M} UTC"]
        big = self.largest
        if big is not None:
            out.append(f"Largest saving: {self.largest_names}, {big.monthly_saving:.2f} {cur}/month"
                       + (f" ({big.kind_text}, risk {big.risk})" if self.largest_names == big.name else " each"))
        out += ["", *self.headline.lines(), ""]
        out.append(_new_title(self))
        out += [f"  {i.name}: {i.finding}" + (f"; {i.kind_text} {i.monthly_saving:.2f} {cur}/month"
                                              if i.monthly_saving else "")
                + (f" - {i.reason}" if i.reason else "") for i in self.new[:NEW_LISTED]]
        if len(self.new) > NEW_LISTED:
            out.append(f"  ... and {len(self.new) - NEW_LISTED} more")
        out += ["", f"Top {len(self.top)} by saving ({cur}/month):" if self.top else "No savings found."]
        name_w = max((len(i.name) for i in self.top), default=0)
        money_w = max((len(f"{i.monthly_saving:.2f}") for i in self.top), default=0)
        kind_w = max((len(i.kind_text) for i in self.top), default=0)
        for n, i in enumerate(self.top, 1):
            line = (f"  {n:>2}. {i.name:<{name_w}}  {i.monthly_saving:>{money_w}.2f}  {i.kind_text:<{kind_w}}  "
                    f"risk {i.risk}" + (f"  {i.link}" if i.link else ""))
            out.append(line.rstrip())
        out += ["", _realised_line(self)]
        out.append(f"Backups overdue: {len(self.backups_overdue)}")
        out += [f"  {b.vm_name}: {_backup_text(b)}" for b in self.backups_overdue]
        if self.dashboard_url:
            out += ["", f"Dashboard: {self.dashboard_url}"]
        return "\n".join(out) + "\n"

    def html(self) -> str:
        """The digest as a small self-contained HTML page (no scripts, no external resources)."""
        cur = html.escape(self.currency)
        e = html.escape
        parts = ["<!doctype html><html><head><meta charset='utf-8'><title>rightsizer digest</title></head>",
                 "<body style='font-family:sans-serif;font-size:14px'>",
                 f"<h2>rightsizer digest</h2><p>Data as of {self.as_of:%Y-%m-%d %H:%M} UTC.</p>"]
        big = self.largest
        if big is not None:
            parts.append(f"<p><b>Largest saving:</b> {e(self.largest_names)}, {big.monthly_saving:.2f} {cur}/month"
                         + (f" ({e(big.kind_text)}, risk {e(big.risk)})" if self.largest_names == big.name
                            else " each") + "</p>")
        parts.append("<p>" + "<br>".join(e(x.strip()) for x in self.headline.lines()) + "</p>")
        parts.append(f"<h3>{e(_new_title(self))}</h3>")
        if self.new:
            parts.append("<ul>" + "".join(
                f"<li>{_vm_html(i)}: {e(i.finding)}"
                + (f"; {e(i.kind_text)} {i.monthly_saving:.2f} {cur}/month" if i.monthly_saving else "")
                + (f" &ndash; {e(i.reason)}" if i.reason else "") + "</li>" for i in self.new[:NEW_LISTED]) + "</ul>")
            if len(self.new) > NEW_LISTED:
                parts.append(f"<p>&hellip; and {len(self.new) - NEW_LISTED} more</p>")
        if self.top:
            parts.append(f"<h3>Top {len(self.top)} by saving</h3><table cellpadding='4' style='border-collapse:"
                         "collapse'><tr><th align='left'>VM</th><th align='right'>"
                         f"{cur}/month</th><th align='left'>kind</th><th align='left'>risk</th></tr>")
            parts += [f"<tr><td>{_vm_html(i)}</td><td align='right'>{i.monthly_saving:.2f}</td>"
                      f"<td>{e(i.kind_text)}</td><td>{e(i.risk)}</td></tr>" for i in self.top]
            parts.append("</table>")
        parts.append(f"<h3>Realised savings</h3><p>{e(_realised_line(self))}</p>")
        parts.append(f"<h3>Backups overdue ({len(self.backups_overdue)})</h3>")
        if self.backups_overdue:
            parts.append("<ul>" + "".join(f"<li>{e(b.vm_name)}: {e(_backup_text(b))}</li>"
                                          for b in self.backups_overdue) + "</ul>")
        if self.dashboard_url:
            parts.append(f"<p><a href='{e(self.dashboard_url, quote=True)}'>Open the dashboard</a></p>")
        parts.append("</body></html>\n")
        return "".join(parts)

    def as_json(self) -> dict[str, object]:
        """The digest as JSON (``digest --output json``); money to 2 decimals."""
        def item(i: DigestItem) -> dict[str, object]:
            return {"name": i.name, "uuid": i.uuid, "finding": i.finding, "kinds": list(i.kinds),
                    "monthly_savings": round(i.monthly_saving, 2), "risk": i.risk, "reason": i.reason,
                    "link": i.link or None}

        return {
            "digest_id": self.digest_id, "as_of": self.as_of.isoformat(), "previous_id": self.previous_id,
            "headline": self.headline.as_json(), "top": [item(i) for i in self.top],
            "new": [item(i) for i in self.new],
            "realised_savings": round(self.realised_total, 2), "currency": self.currency,
            "realised": [{"name": s.vm_name, "uuid": s.vm_uuid, "applied_at": s.applied_at.isoformat(),
                          "saving": round(s.saving, 2)} for s in self.realised],
            "backups_overdue": [{"name": b.vm_name, "uuid": b.vm_uuid, "policy": b.policy,
                                 "age_s": b.age_s, "reason": b.reason} for b in self.backups_overdue],
        }


def _new_title(d: Digest) -> str:
    since = "since the last digest" if d.previous_id is not None else "(first digest: every open finding)"
    return f"New findings {since}: {len(d.new)}"


def _realised_line(d: Digest) -> str:
    n = len(d.realised)
    if not n:
        return "Realised savings: none yet (no resize or stop applied)"
    return (f"Realised savings: {d.realised_total:.2f} {d.currency} so far from {n} applied "
            f"change{'' if n == 1 else 's'}")


def _backup_text(b: BackupFinding) -> str:
    if b.newest is None:
        return f"never backed up (policy {b.policy})"
    return f"newest {b.age_s / 3600:.0f} h old (policy {b.policy})" if b.age_s is not None else b.reason


def _vm_html(i: DigestItem) -> str:
    name = html.escape(i.name)
    return f"<a href='{html.escape(i.link, quote=True)}'>{name}</a>" if i.link else name


def finding_key(f: VmFinding) -> str:
    """What makes a finding "the same" from one digest to the next: the VM and its verdict."""
    return f"{f.uuid}:{f.finding.value}"


def is_notable(f: VmFinding) -> bool:
    """A finding a digest mentions: it saves something, or it asks for a look (upsize, contention, regret, ...)."""
    return (not f.excluded and f.dismissed is None
            and (headline_saving(f) > 0 or f.finding.value not in QUIET_FINDINGS))


def digest_item(f: VmFinding, public_url: str = "") -> DigestItem:
    """One finding as a digest line (its link under ``public_url`` when set)."""
    kind = saving_kind(f)
    kinds = tuple(k for k in SAVING_KINDS if k == kind or (k == "schedule" and f.schedule_monthly_savings > 0))
    reason = f.reasons.get("overall", "")
    if kinds == ("schedule",) and f.schedule is not None:  # the verdict's reason says nothing of the schedule
        reason = f"on/off schedule: on {f.schedule.on} ({f.schedule.timezone})"
    return DigestItem(name=f.name, uuid=f.uuid, finding=f.finding.value, kinds=kinds,
                      monthly_saving=headline_saving(f), risk=f.risk.value, reason=reason,
                      link=vm_link(public_url, f.uuid))


def vm_link(public_url: str, uuid: str) -> str:
    """The dashboard page of a VM under ``public_url`` ("" when unset)."""
    return f"{public_url.rstrip('/')}/vm/{uuid}" if public_url else ""


def build_digest(
    analysis: FleetAnalysis, *, backups: Sequence[BackupFinding] = (), realised: Sequence[RealisedSaving] = (),
    previous_keys: Collection[str] | None = None, previous_id: str | None = None, public_url: str = "",
) -> Digest:
    """The digest of one analysis. ``previous_keys`` are the finding keys of the last digest sent (None: none
    was sent, so every notable finding is new). Pure: no I/O."""
    notable = [f for f in analysis.findings if is_notable(f)]
    keys = tuple(sorted(finding_key(f) for f in notable))
    ranked = sorted((f for f in notable if headline_saving(f) > 0), key=lambda f: (-headline_saving(f), f.name))
    seen = set(previous_keys or ())
    new = sorted((f for f in notable if finding_key(f) not in seen), key=lambda f: (-headline_saving(f), f.name))
    overdue = tuple(b for b in backups if b.is_overdue)
    content = {
        "as_of": analysis.now.isoformat(),
        "findings": sorted((finding_key(f), round(headline_saving(f), 2), f.risk.value) for f in notable),
        "backups_overdue": sorted(b.vm_uuid for b in overdue),
    }
    digest_id = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    return Digest(
        digest_id=digest_id, as_of=analysis.now, currency=analysis.headline.currency, headline=analysis.headline,
        top=tuple(digest_item(f, public_url) for f in ranked[:TOP_N]),
        new=tuple(digest_item(f, public_url) for f in new), keys=keys, realised=tuple(realised),
        backups_overdue=overdue, previous_id=previous_id,
        dashboard_url=public_url.rstrip("/") + "/" if public_url else "",
    )


def sent_record(store: TimeSeriesStore) -> dict[str, object]:
    """The digest record in the store: ``last`` ({id, sent_at, keys}) and ``channels`` ({channel: {id, sent_at}})."""
    return read_json_meta(store, DIGEST_META_KEY)


def last_sent(store: TimeSeriesStore) -> tuple[str | None, list[str] | None]:
    """The id and finding keys of the last digest delivered ((None, None) before the first)."""
    last = sent_record(store).get("last")
    if not isinstance(last, dict) or not isinstance(last.get("keys"), list):
        return None, None
    return str(last.get("id") or "") or None, [str(k) for k in last["keys"]]


def digest_for_store(store: TimeSeriesStore, catalogue: FleetCatalogue, settings: Settings,
                     now: datetime | None = None) -> Digest:
    """Analyse the fleet as every surface does and build its digest against the last one sent.

    ``now`` None judges as of the newest data (as ``recommend`` does). Raises InputError on bad settings.
    """
    analysis = analyse_fleet(store, catalogue, AnalysisOptions.from_settings(settings, catalogue, now=now))
    at = analysis.now
    vms = store.vms()
    backups = check_backups(vms, store.backups(), settings.backups, at)
    realised = realised_savings_for_store(store, at, currency=analysis.headline.currency)
    previous_id, previous_keys = last_sent(store)
    return build_digest(analysis, backups=backups, realised=realised, previous_keys=previous_keys,
                        previous_id=previous_id, public_url=settings.dashboard.public_url)
