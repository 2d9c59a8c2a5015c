// Package synth synthesizes persona role-play training data at scale, as
// `masque synth` does (METHODS §1 stage A and §4):
//
//   - profiles (RunProfiles): personas (Persona Hub JSONL, plain text,
//     SillyTavern character cards) → character profiles whose first line is
//     "Name: ...", written as synthetic_character.jsonl;
//   - answers (RunAnswers): each instruction (Alpaca, chat JSONL, question
//     lists) paired with n random characters and answered in character by
//     strategy R (rewrite the reference answer) or G (fresh answer), written
//     as synthetic_dialogue.jsonl and as chat JSONL for fine-tuning;
//   - Persona-Pruner data (RunPersonaScores, RunPersonaData): questions
//     ranked by persona sensitivity s(q), measured on the hidden states of
//     the model to be pruned (Scorer), the top N rewritten in the persona's
//     voice, written as chat JSONL with the METHODS system prompt;
//   - style rewrite (RunStyleRewrite, METHODS §3): stylised lines → a
//     neutral rewrite and a reasoning trace by the teacher, or parallel
//     (neutral, styled) pairs without one (ReadVoicePairs: two voices of a
//     voices corpus that share contrast keys, sentence-aligned), written
//     as chat JSONL whose prompt holds the character, its style tags and
//     keywords and the neutral content, and whose target is
//     "<think>trace</think>" + the original line.
//
// Every stage appends its rows to an append-only log in the output folder
// (<stage>.log.jsonl, one write per row, each row under a stable id that
// hashes its inputs), drops outputs that fail the quality checks to
// <stage>.rejected.jsonl with their reasons, and records failed requests in
// <stage>.failures.jsonl. A rerun skips every row already logged or
// rejected and retries the failed ones, so a crash, kill -9 or SIGINT
// loses nothing and duplicates nothing; a torn last line is removed on
// restart. Shard splits a job by row-id hash; Merge joins and verifies the
// shards. The deliverables and the HTML report are built from the logs by
// Finalize, sorted by row id and with near-duplicate answers removed, so
// an interrupted, a sharded and an uninterrupted run give the same files.
//
// The teachers (masque's engine or an OpenAI-compatible endpoint, with
// retries, rate limits and a response cache) live in package
// synth/teacher.
package synth
