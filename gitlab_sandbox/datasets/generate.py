"""Write the sandbox's evaluation datasets: ``python -m gitlab_sandbox.datasets.generate``.

One file per dataset of the default catalog, ``EXAMPLES`` examples each, built from small pools of
plausible text by a generator seeded with the dataset's name: running it again rewrites the same
bytes, so a diff shows only a deliberate change to this script.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

EXAMPLES = 240
HERE = Path(__file__).resolve().parent

Maker = Callable[[random.Random], tuple[str, str]]

_GITLAB_TASKS = [
    ("protect the main branch", "Go to Settings > Repository > Protected branches, choose main, and set who may push and merge."),
    (
        "schedule a nightly pipeline",
        "Open Build > Pipeline schedules, add a schedule with a cron such as `0 2 * * *`, and pick the branch.",
    ),
    (
        "require approvals on merge requests",
        "Under Settings > Merge requests > Approval rules, add a rule with the number of approvals needed.",
    ),
    ("cache dependencies in CI", "Add a `cache:` block with `key: $CI_COMMIT_REF_SLUG` and the dependency directory under `paths:`."),
    (
        "mask a CI/CD variable",
        "In Settings > CI/CD > Variables, edit the variable and tick Mask variable; its value must meet the masking rules.",
    ),
    ("link an issue to an epic", "Open the epic, choose Add > Existing issue, and paste the issue reference such as `#123`."),
    (
        "close an issue from a commit",
        "Put `Closes #123` in the commit message or merge request description; merging to the default branch closes it.",
    ),
    ("run a job only on tags", "Use `rules: - if: $CI_COMMIT_TAG` on the job so it is added only to tag pipelines."),
    ("add a deploy key", "Under Settings > Repository > Deploy keys, paste the public key and grant write access only if it must push."),
    ("see who changed a line", "Open the file and choose Blame; each line shows the last commit and author that changed it."),
    ("retry a failed job", "Open the pipeline, find the failed job and select Retry; only that job and its dependants run again."),
    ("set a due date on an issue", "In the issue sidebar, edit Due date, or use the quick action `/due 2025-03-01`."),
    (
        "revert a merge request",
        "Open the merged merge request and select Revert; GitLab creates a new merge request with the revert commit.",
    ),
    ("use a parent-child pipeline", "Add a trigger job with `trigger: include: child.yml` and `strategy: depend` to wait for the child."),
    ("export issues to CSV", "On the issue list, select Actions > Export as CSV; the file is emailed to you."),
    (
        "enable two-factor authentication",
        "Go to User settings > Account > Enable two-factor authentication and scan the QR code with an app.",
    ),
]
_ASKED = ["How do I {}?", "What is the way to {} in GitLab?", "Can you explain how to {}?", "I need to {}. Where do I start?",
          "Is there a quick way to {}?"]  # fmt: skip

_PY_TASKS = [
    (
        "returns the n-th Fibonacci number iteratively",
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
    ),
    ("checks whether a string is a palindrome, ignoring case", "def is_palindrome(s):\n    s = s.lower()\n    return s == s[::-1]"),
    ("counts the words in a text", "def count_words(text):\n    return len(text.split())"),
    ("flattens a list of lists", "def flatten(rows):\n    return [x for row in rows for x in row]"),
    ("returns the unique items of a list in their first order", "def unique(items):\n    return list(dict.fromkeys(items))"),
    (
        "parses 'key=value' lines into a dict",
        "def parse_pairs(text):\n    return dict(line.split('=', 1) for line in text.splitlines() if '=' in line)",
    ),
    ("chunks a list into pieces of size k", "def chunks(items, k):\n    return [items[i:i + k] for i in range(0, len(items), k)]"),
    ("returns the largest of three numbers", "def largest(a, b, c):\n    return max(a, b, c)"),
    ("converts Celsius to Fahrenheit", "def to_fahrenheit(c):\n    return c * 9 / 5 + 32"),
    (
        "reads a JSON file and returns its data",
        "import json\n\ndef read_json(path):\n    with open(path) as f:\n        return json.load(f)",
    ),
    ("merges two sorted lists into one sorted list", "import heapq\n\ndef merge(a, b):\n    return list(heapq.merge(a, b))"),
    ("returns the factorial of n", "import math\n\ndef factorial(n):\n    return math.factorial(n)"),
]
_PY_STYLE = ["Write a Python function that {}.", "Implement a function which {}.", "Python: a function that {}, please.",
             "Create a small helper that {}."]  # fmt: skip

_COMPLETIONS = [
    ("python", "def area(radius):\n    return math.pi * ", "radius ** 2"),
    ("python", "for index, item in ", "enumerate(items):"),
    ("python", "with open(path, 'r') as ", "handle:"),
    ("go", "if err != nil {\n\treturn ", "err\n}"),
    ("go", "for i := 0; i < len(xs); ", "i++ {"),
    ("javascript", "const total = items.reduce((sum, x) => ", "sum + x, 0);"),
    ("javascript", "document.getElementById(", "'app');"),
    ("ruby", "users.each do |", "user|"),
    ("ruby", "def initialize(name)\n  @name = ", "name"),
    ("java", "public static void main(", "String[] args) {"),
    ("rust", "let mut counts = HashMap::", "new();"),
    ("typescript", "export interface User {\n  id: ", "number;"),
]
_NAMES = ["items", "users", "rows", "values", "records", "jobs", "events", "tokens"]

_SNIPPETS = [
    ("python", "sorted(people, key=lambda p: p.age)", "It sorts the people by age, ascending, using each person's age as the sort key."),
    ("python", "any(x < 0 for x in xs)", "It is True when at least one value in xs is negative; it stops at the first one."),
    (
        "sql",
        "SELECT user_id, COUNT(*) FROM orders GROUP BY user_id HAVING COUNT(*) > 5",
        "It lists users with more than five orders and how many orders each has.",
    ),
    ("bash", "find . -name '*.log' -mtime +7 -delete", "It deletes log files under the current directory not modified in the last 7 days."),
    ("javascript", "await Promise.all(urls.map(fetch))", "It fetches every URL concurrently and waits until all responses have arrived."),
    ("go", "defer file.Close()", "It closes the file when the surrounding function returns, whichever way it returns."),
    ("ruby", "hash.transform_values(&:to_s)", "It returns a new hash with the same keys and every value converted to a string."),
    ("yaml", "rules:\n  - if: $CI_PIPELINE_SOURCE == 'merge_request_event'", "The job runs only in merge request pipelines."),
    (
        "python",
        "@functools.lru_cache(maxsize=None)",
        "It memoizes the decorated function, so repeated calls with the same arguments are cached.",
    ),
    (
        "rust",
        "let v: Vec<_> = iter.filter(|x| x.is_ok()).collect();",
        "It keeps the Ok results of the iterator and collects them into a vector.",
    ),
]

_THREAD_TOPICS = ["the login page times out", "pipeline minutes ran out", "the export job is slow", "dark mode contrast",
                  "webhook retries flood the endpoint", "search misses archived projects"]  # fmt: skip
_PEOPLE = ["alex", "priya", "marco", "li", "fatima", "jon", "sofia", "kenji"]
_OUTCOMES = ["a fix is merged behind a flag", "the team will add a retry with backoff", "it is a duplicate and will be closed",
             "more data is needed before deciding", "a workaround is documented for now"]  # fmt: skip

_CHANGES = [
    ("app/models/user.rb", "validate email format", "Validate the format of user email addresses"),
    ("lib/api/issues.rb", "paginate issue notes", "Paginate notes in the issues API"),
    ("app/services/ci/retry_job.rb", "keep job variables on retry", "Keep job variables when a job is retried"),
    ("config/routes.rb", "add health endpoint", "Add a health check endpoint"),
    ("spec/models/project_spec.rb", "cover archived projects", "Add specs for archived projects"),
    ("app/workers/export_worker.rb", "stream large exports", "Stream large exports instead of loading them in memory"),
    ("doc/ci/variables.md", "document masked variables", "Document masked variable requirements"),
    ("app/assets/javascripts/board.vue", "fix drag and drop ordering", "Fix issue ordering after drag and drop on boards"),
]

_FAILURES = [
    (
        "npm ERR! code ERESOLVE\nnpm ERR! Could not resolve dependency: peer react@18",
        "A peer dependency conflict: pin react to a compatible version or install with --legacy-peer-deps.",
    ),
    (
        "ERROR: Job failed: exit code 137",
        "The job was killed for using too much memory (exit 137); use a larger runner or lower the memory use.",
    ),
    (
        "fatal: could not read Username for 'https://gitlab.com'",
        "Git needs credentials: use CI_JOB_TOKEN in the clone URL or a deploy token.",
    ),
    (
        "ModuleNotFoundError: No module named 'requests'",
        "The dependency is not installed in the job image: add it to requirements and install it before the tests.",
    ),
    (
        "Error: Cannot connect to the Docker daemon at tcp://docker:2375",
        "The docker:dind service is missing or not ready: add it under services and set DOCKER_HOST.",
    ),
    (
        "rspec ./spec/models/user_spec.rb:42 # User validates email",
        "A model spec fails on email validation: the fixture email no longer matches the new format rule.",
    ),
    (
        "ERROR: Uploading artifacts ... 413 Request Entity Too Large",
        "The artifact is larger than the instance limit: shrink it or raise the maximum artifact size.",
    ),
    ("timeout: the job exceeded the 1h limit", "The job hit its timeout: split the work, cache dependencies, or raise the job timeout."),
]

_FINDINGS = [
    (
        "SQL injection",
        "query = f\"SELECT * FROM users WHERE name = '{name}'\"",
        "Use a parameterized query: cursor.execute('SELECT * FROM users WHERE name = %s', (name,)).",
    ),
    (
        "Hard-coded secret",
        "API_KEY = 'sk_live_51H...'",
        "Read the key from an environment variable or a secrets manager and rotate the leaked one.",
    ),
    ("Command injection", "os.system('ping ' + host)", "Call subprocess.run(['ping', host]) without a shell, after validating host."),
    ("Insecure hash", "hashlib.md5(password.encode())", "Hash passwords with a slow salted function such as bcrypt or argon2."),
    ("Path traversal", "open(os.path.join(BASE, request.args['file']))", "Resolve the path and reject it unless it stays under BASE."),
    ("Cross-site scripting", "element.innerHTML = userInput", "Set element.textContent instead, or sanitize the HTML before inserting it."),
    ("Insecure deserialization", "pickle.loads(request.data)", "Never unpickle untrusted data; accept JSON and validate it."),
    (
        "Disabled TLS verification",
        "requests.get(url, verify=False)",
        "Keep verification on; pass the CA bundle with verify=path when needed.",
    ),
]

_REVIEWS = [
    ("def total(xs):\n    t = 0\n    for x in xs: t += x\n    return t", "Use the built-in sum(xs); the loop adds nothing."),
    ("except Exception:\n    pass", "Swallowing every exception hides failures: catch the specific error and log it."),
    ("if user == None:", "Compare with None using `is None`."),
    ("users = User.all.select { |u| u.active? }", "Filter in the database with User.where(active: true) rather than loading every user."),
    ("for i in range(len(items)):\n    print(items[i])", "Iterate directly: `for item in items:`."),
    ('password = params[:password]\nlogger.info("login #{password}")', "Never log the password; drop it from the log line."),
    ("time.sleep(5)  # wait for the job", "Poll with a timeout instead of a fixed sleep, so the test is neither slow nor flaky."),
    ("const data = JSON.parse(body)", "Guard the parse with try/catch: a malformed body throws and crashes the handler."),
]


def _questions(rng: random.Random) -> tuple[str, str]:
    task, answer = rng.choice(_GITLAB_TASKS)
    return rng.choice(_ASKED).format(task), answer


def _python_tasks(rng: random.Random) -> tuple[str, str]:
    task, code = rng.choice(_PY_TASKS)
    return rng.choice(_PY_STYLE).format(task), code


def _completions(rng: random.Random) -> tuple[str, str]:
    language, prefix, completion = rng.choice(_COMPLETIONS)
    name = rng.choice(_NAMES)
    return f"# language: {language}\n{prefix.replace('items', name)}", completion.replace("items", name)


def _snippets(rng: random.Random) -> tuple[str, str]:
    language, code, explanation = rng.choice(_SNIPPETS)
    return f"Explain this {language} code:\n{code}", explanation


def _threads(rng: random.Random) -> tuple[str, str]:
    topic, outcome = rng.choice(_THREAD_TOPICS), rng.choice(_OUTCOMES)
    who = rng.sample(_PEOPLE, 3)
    lines = [f"{who[0]}: Reports that {topic} since the last release.", f"{who[1]}: Reproduced it; it started with the last deploy.",
             f"{who[2]}: Proposes that {outcome}.", f"{who[0]}: Agreed."]  # fmt: skip
    return "\n".join(
        lines[: rng.randint(3, 4)]
    ), f"{who[0]} reported that {topic}; {who[1]} reproduced it; the thread concluded that {outcome}."


def _diff(rng: random.Random) -> tuple[str, str, str]:
    path, what, title = rng.choice(_CHANGES)
    added = rng.randint(2, 40)
    return f"diff --git a/{path} b/{path}\n@@ -{rng.randint(1, 200)},6 +{rng.randint(1, 200)},{6 + added} @@\n+# {what}", title, path


def _commit_messages(rng: random.Random) -> tuple[str, str]:
    diff, title, _ = _diff(rng)
    return diff, title


def _mr_summaries(rng: random.Random) -> tuple[str, str]:
    diff, title, path = _diff(rng)
    return diff, f"{title}. The change is in `{path}` and comes with no migration."


def _failed_jobs(rng: random.Random) -> tuple[str, str]:
    log, cause = rng.choice(_FAILURES)
    job = rng.choice(["test", "build", "lint", "deploy", "rspec 3/8", "jest"])
    return f"Job `{job}` failed. Last lines of the log:\n$ make {job.split()[0]}\n{log}", cause


def _sast_findings(rng: random.Random) -> tuple[str, str]:
    kind, code, fix = rng.choice(_FINDINGS)
    line = rng.randint(3, 400)
    return f"{kind} (severity {rng.choice(['High', 'Critical', 'Medium'])}) at line {line}:\n{code}", fix


def _reviews(rng: random.Random) -> tuple[str, str]:
    code, comment = rng.choice(_REVIEWS)
    return f"Review this change:\n{code}", comment


#: Every dataset the default catalog names, and how its examples are made.
DATASETS: dict[str, Maker] = {
    "duo_chat.questions.v3": _questions,
    "code_generation.python_tasks.v2": _python_tasks,
    "code_completion.multi_language.v4": _completions,
    "code_explanation.snippets.v2": _snippets,
    "discussion_summary.issue_threads.v1": _threads,
    "merge_commit_message.diffs.v1": _commit_messages,
    "root_cause_analysis.failed_jobs.v2": _failed_jobs,
    "vulnerability_resolution.sast_findings.v2": _sast_findings,
    "merge_request_summary.diffs.v1": _mr_summaries,
    "code_review.merge_requests.v1": _reviews,
}


def examples(name: str, count: int = EXAMPLES) -> list[dict[str, str]]:
    """``count`` examples of dataset ``name``, the same on every run."""
    # sha256, not hash(): str hashes change between processes, and the files must not.
    rng = random.Random(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big"))
    feature = name.split(".")[0]
    made = (DATASETS[name](rng) for _ in range(count))
    return [{"id": f"{feature}-{n:04d}", "input": text, "reference": reference} for n, (text, reference) in enumerate(made, 1)]


def write_all(directory: Path = HERE) -> list[Path]:
    written = []
    for name in sorted(DATASETS):
        path = directory / f"{name}.jsonl"
        lines = (json.dumps(example, ensure_ascii=False, sort_keys=True) for example in examples(name))
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all():
        print(path.name)
