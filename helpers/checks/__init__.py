"""Exercise checkers (introduced in notebook 00_start_here): one engine, one module of checkers per part.

Every exercise ends with a call such as ``checks.dot(dot)``. The checker runs the
learner's function on ordinary cases, edge cases and hidden larger cases, then
prints one verdict: a tick when everything is right, or what went wrong with a hint.

=========================  ===================================================================
module                     holds
=========================  ===================================================================
``checks.engine``          ``Case``, ``run_checks``, ``CheckResult``, the registry
                           (``@checker``, ``CHECKERS``) and the printing of a verdict
``checks.timing``          the time limit (``TIME_LIMIT``, ``TOTAL_TIME_FACTOR``): signal on the
                           main thread, helper thread elsewhere
``checks.compare``         ``compare_arrays``, ``compare_scalar``, float32 room, and
                           ``named_slip``, the one routine that names a known mistake
``checks.networks``        part 1: 00_start_here, 01_neurons_and_layers, 02_learning_from_data,
                           03_backpropagation, 04_training_networks
``checks.text``            part 2: 05_text_to_numbers, 06_next_token_prediction
``checks.transformer``     part 3: 07_attention, 08_the_transformer
``checks.pretraining``     part 4: 09_pretraining, 10_evaluation_and_data
``checks.adaptation``      part 5: 11_fine_tuning, 12_model_families
``checks.assistant``       13_base_model_to_assistant
``checks.real_llm``        14_a_real_llm
=========================  ===================================================================

Notebooks write ``from helpers import checks`` and call ``checks.<name>(...)``: every checker
is imported here (and registered in ``checks.CHECKERS``).

A checker never crashes and never hangs, whatever it is given: ``None``, a
function that raises (even ``sys.exit()``), returns the wrong shape or type,
returns NaN or an endless generator, changes its input, hard-codes the visible
example, or loops forever (it is stopped after a time limit, even inside a
``try: ... except: pass``). It returns a ``CheckResult`` that tests can inspect.
Interrupting the kernel (Ctrl-C) still stops a checker at once.

One rule holds for every exercise:
do not change the input array in place; return a new array.
(``z * 2`` and ``np.maximum(0, z)`` make a new array; ``z *= 2`` and ``z[z < 0] = 0``
change ``z`` itself.) The checkers hand the function copies and reject an answer that
changes them.

Answers computed in float32 (PyTorch's default) pass as well as float64 ones: the
tolerances leave room for float32 rounding.

Hints come in tiers. A checker's hint is one sentence or a list from a nudge to the answer:
the first failed run prints the nudge, each later failed run the next tier, and
``checks.hint("name")`` asks for the next one without running the check again.

Claims in the prose are checked quietly with ``checks.verify("claim in words", condition)``:
silent when the claim holds, a ``ClaimFailed`` naming the sentence when it does not. A code cell
that only verifies claims carries the cell tag ``verify``, and ``.ci/clean_notebooks.py``
collapses its source in JupyterLab.

The time limit is one setting, ``checks.timing.TIME_LIMIT`` (seconds per case), read each
time a checker runs: ``checks.timing.TIME_LIMIT = 5`` gives a slow computer more time.
"""

# the engine (every notebook)
from helpers.checks import timing
from helpers.checks.compare import as_array, compare_arrays, compare_scalar, named_slip
from helpers.checks.engine import (CHECKERS, Case, CheckResult, ClaimFailed, check_prediction, checker, hint,
                                   run_checks, verify)

# part 1: networks (notebooks 00-04)
from helpers.checks.networks import (bce_with_logits, dense_layer, dot, evaluate, find_crossing, fit_numerically,
                                     forward_pass, make_batches, noisy_points, numerical_gradient, predict_dropout_mean,
                                     predict_grad_after_three_steps, predict_steep_direction, predict_step_position,
                                     predict_used_twice, predict_xor_without_relu, relu, sigmoid,
                                     train_loop, train_xor, two_layer_backward, value_engine)

# part 2: text (notebooks 05-06)
from helpers.checks.text import (bigram_loss, bpe_decode, bpe_encode, merge, pair_counts,
                                 predict_trigram_loss, predict_utf8_bytes, sample_next)

# part 3: the transformer (notebooks 07-08)
from helpers.checks.transformer import (causal_attention, multi_head_attention,
                                        predict_zero_query_weight)
from helpers.checks.transformer import block_forward, gpt_forward, predict_wider_parameters   # notebook 08

# part 4: pretraining (notebooks 09-10)
from helpers.checks.pretraining import adam_scale, adamw_step, clip_gradients_  # notebook 09
from helpers.checks.pretraining import bits_per_character, evaluation_split, predict_uniform_token_bits  # 10

# part 5: adaptation (notebooks 11-12)
from helpers.checks.adaptation import (lora_linear, mcnemar_p, mcnemar_prediction, permutation_mask,
                                       predict_two_stream_count, reply_log_prob)

# notebook 13: from a base model to an assistant
from helpers.checks.assistant import beta_to_zero, dpo_loss, eval_prompt, sft_targets

# notebook 14: a real LLM
from helpers.checks.real_llm import gqa_cached_step, kv_cache_size, rope_attention, rotary_embedding
