// A promptfoo grading provider that stands in for the LLM judge and the embedding model, offline.
//
// It reads back the scores promptfoo_provider.py put in each answer's `<!-- simulated {...} -->`
// annotation, so promptfoo's own `llm-rubric` and `similar` assertions report the simulator's
// numbers unchanged:
// - callApi answers an llm-rubric grading request as a judge model would, with {pass, score, reason}:
//   the metric is the judge the rubric names first (correctness, readability or comprehensiveness),
//   and its 1-4 grade goes out as score = (grade - 1) / 3;
// - callEmbeddingApi embeds an annotated answer as [s, sqrt(1 - s^2)] and any other text (the
//   reference) as [1, 0], so their cosine is the simulated similarity s.
// An answer with no annotation (a real model's) is refused with an error: this grader judges
// nothing the sandbox did not simulate. JavaScript, not Python, because promptfoo runs a
// JavaScript provider in its own process, where a Python one costs a process per call (four
// grading calls per answer).
'use strict';

const JUDGES = ['correctness', 'readability', 'comprehensiveness'];
const ANNOTATED = /<!-- simulated (\{.*?\}) -->\s*$/s;

function annotation(text) {
  if (typeof text !== 'string') return null;
  const found = ANNOTATED.exec(text);
  if (!found) return null;
  try {
    const scores = JSON.parse(found[1]);
    return scores && typeof scores === 'object' ? scores : null;
  } catch {
    return null;
  }
}

function judgeNamed(rubric) {
  const text = String(rubric).toLowerCase();
  let best = null;
  for (const name of JUDGES) {
    const at = text.indexOf(name);
    if (at >= 0 && (best === null || at < best.at)) best = { name, at };
  }
  return best && best.name;
}

class SandboxGrader {
  constructor(options = {}) {
    this.options = options;
  }

  id() {
    return this.options.id || 'gitlab-sandbox-grader';
  }

  async callApi(prompt, context) {
    const vars = (context && context.vars) || {};
    const scores = annotation(vars.output) || annotation(String(prompt).split('</Output>')[0]);
    if (!scores) return { error: 'the sandbox grader judges only answers the sandbox simulated (no <!-- simulated --> annotation)' };
    const metric = judgeNamed(vars.rubric !== undefined ? vars.rubric : prompt);
    if (!metric || scores[metric] === null || scores[metric] === undefined) {
      return { error: `the rubric names no judge the simulator scored (${JUDGES.join(', ')})` };
    }
    const grade = Number(scores[metric]);
    return { output: JSON.stringify({ pass: grade >= 3, score: (grade - 1) / 3, reason: `simulated ${metric} grade ${grade} of 4` }) };
  }

  async callEmbeddingApi(text) {
    const scores = annotation(text);
    const s = scores && typeof scores.similarity === 'number' ? Math.min(1, Math.max(-1, scores.similarity)) : null;
    return { embedding: s === null ? [1, 0] : [s, Math.sqrt(1 - s * s)] };
  }
}

module.exports = SandboxGrader;
