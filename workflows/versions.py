"""Every patch id and input revision the workflows know, and when each can go.

Two ways to change workflow code without breaking running workflows:
- ``workflow.patched(ID)``: for changes that running workflows must pick up. Old histories
  replay the old branch. Each marker costs the run a search-attribute upsert, so patches are
  asked only on the path that needs them.
- ``revision`` in the input: for changes that only new runs get. The start event holds it, so a
  replay takes the branch of the original run with no marker at all. Starters pass the
  current revision; older histories read as 1.

A patch or revision branch can be removed once no workflow started before it is still open
(``temporal workflow list --query 'ExecutionStatus="Running"'``) and its replay histories have
been retired with it.
"""

from __future__ import annotations

# -- patches: running workflows pick these up --------------------------------------------------

#: The feature issue is linked to the tracking issue. Remove once no feature started before
#: the v2 histories runs.
ISSUE_LINK_PATCH = "issue-link"
#: A feature blocked by GitLab tells people outside GitLab. Remove with the v2 histories.
BLOCKED_NOTICE_PATCH = "blocked-notice"
#: A migration blocked by GitLab tells its starter and AI Framework. Remove with the v3 histories.
MIGRATION_BLOCKED_NOTICE_PATCH = "migration-blocked-notice"
#: Init opens the AI gateway merge request and waits for it. Remove with the v1 histories.
CONFIG_MR_PATCH = "model-config-mr"
#: The tracking issue is edited only when its description would change. Remove with v1.
TABLE_DIFF_PATCH = "table-only-when-changed"
#: The feature run loop posts every queued note before it waits, closes or returns, even one
#: queued by a command that arrived while it told the parent. Asked only when such a note is
#: found, so ordinary runs carry no marker. Remove when no feature started before v4 runs.
DRAIN_OUTBOX_PATCH = "drain-outbox"

#: Labels that a note's ``/label`` names are created first, since GitLab's quick action drops
#: labels that do not exist. Asked only when the first labelled note is about to go out.
#: Remove when no feature started before v4 runs.
ENSURE_LABELS_PATCH = "ensure-labels"

# -- revisions: only new runs get these ----------------------------------------------------------

#: Feature workflow revisions.
#: 2. One escalation timer per planned escalation, kept across commands that do not move it.
#: 3. Stricter command rules (an empty actor, a prompt version not above the failed one, a
#:    passing evaluation without metrics, a non-http(s) link, the same rollout percentage
#:    twice, evaluation or rollout reports while blocked are refused); a rerun's markers carry
#:    its number; the last note closes the issue (``/close``), so no separate update is sent.
#: 4. The engine evaluates: entering evaluate starts an ``EvaluationWorkflow`` child, whose gate
#:    verdict moves the feature; ``approve``, ``reject`` and ``rerun_evaluation`` exist; a team's
#:    ``report_evaluation`` must link its per-example results, which go through the same gate.
#: 5. A feature whose catalog entry names a flag target has its flag driven by the engine:
#:    entering rollout starts a ``RolloutWorkflow`` child, whose end moves the feature (done →
#:    cleanup, where the engine opens the clean-up merge request, then done; rolled back → implement,
#:    where ``retry_rollout`` starts again from the failed step); ``report_rollout`` and
#:    ``complete_stage cleanup`` are refused for it. Features without a flag target run as in 4.
FEATURE_REVISION = 5
#: Migration workflow revisions.
#: 3. Stricter command rules (an empty actor, init completed twice); its features start at
#:    ``FEATURE_REVISION``; a rerun's markers carry its number. (Runs started before the
#:    migration input had a revision read as 1, and start their features at revision 2.)
#: 4. The tracking issue is filed under the initiative epic named in the input, if any.
#: 5. Sized for hundreds of features: the tracking issue is written by ``write_tracking_issue``,
#:    a local activity that draws the description from the features' rows, so that neither the
#:    text (76k characters for 200 features, at every table change before) nor the rows enter
#:    history, and a write costs one marker event instead of six; a
#:    deprecation's migration tells its parent only the features that changed since it last
#:    told it; ``MigrationFeatures`` holds only the names that fit in one search-attribute value.
MIGRATION_REVISION = 5
#: The migration revision from which ``initiative_epic`` is honoured.
INITIATIVE_REVISION = 4
#: The migration revision from which the changes of revision 5 apply.
SCALE_REVISION = 5

# -- keyed on the input: only runs a deprecation starts take these ------------------------------
#: A migration with ``deprecation_epic`` files its tracking issue there instead of the initiative
#: epic and passes it to its features, which file their issues there (``FeatureMigrationInput.epic``);
#: one with ``parent_id`` signals its parent ``deprecation_progress``. A ``shift`` parent command
#: (sent only by a deprecation whose cutoff moved) moves a feature's deadlines, or a migration's
#: features' plans. Older histories have none of these inputs or signals, so they replay unchanged.
#: The deprecation workflow's own revisions: ``DEPRECATION_REVISION`` in ``deprecation_messages.py``.
