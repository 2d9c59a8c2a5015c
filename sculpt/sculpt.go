// Package sculpt is Persona-Pruner (METHODS.md §1, Stage B): it learns
// which FFN channels of a frozen model one persona needs, and exports the
// smaller model that keeps only those.
//
// Every decoder layer l gets a score vector z_l ∈ R^{d_ff}. The forward
// pass multiplies the FFN intermediate activations silu(gate)·up by the
// mask M_l = TopK(z_l, k) (0/1, the same k = round((1 − ratio)·d_ff) in
// every layer; ties go to the smaller channel index); the backward pass
// hands d loss/d M_l to z_l unchanged (straight-through estimator), and
// Adam updates z. The loss is the next-token cross-entropy on the
// assistant tokens of chat data (train/sft's encoding), computed by the
// training engine's Net, which yields d loss/d FFN mask on a frozen model.
// z starts from a data-driven channel importance, the root-mean-square of
// the channel's activation (down_proj's input, from package stats) times the
// L2 norm of its down_proj column, divided by its layer mean, plus small
// seeded Gaussian noise, so that step 0 is already a sensible mask.
// Gumbel-perturbed and soft top-k estimators are there as the paper's
// ablations (Config.Estimator).
//
// Run writes a run folder: run.json (every choice and the curves),
// report.html (loss and mask-churn curves), keep_indices.json (the kept
// channels, [L][k], ascending), scores.json (the learned z), and the exported
// model: model/ (an ordinary Hugging Face folder with intermediate_size = k)
// and model.gguf. Interrupted runs resume exactly (checkpoint/).
//
// The package also holds the baselines at equal k (magnitude, Wanda,
// first-order Taylor, depth pruning by block influence or angular
// distance), the analyses of the paper (mask overlap across seeds and
// personas) and Compare, which runs them all against one persona.
package sculpt
