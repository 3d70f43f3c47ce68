"""The course's figures: one module of shared primitives, one module per part of the course.

=======================  =====================================================================
module                   serves
=======================  =====================================================================
``plots.common``         every notebook: palette, ``new_figure``, ``show``, ``to_png``, decision
                         regions, loss curves, attention heat maps, plain log ticks,
                         ``LiveLoss``, and the one way of showing whitespace
``plots.networks``       part 1, notebooks 00-04 (neurons, learning, backpropagation, training)
``plots.text``           part 2, notebooks 05-06 (tokens, next-token prediction)
``plots.transformer``    part 3, notebooks 07-08 (attention, the transformer)
``plots.pretraining``    part 4, notebooks 09-10 (pretraining, evaluation and data)
``plots.adaptation``     part 5, notebooks 11-12 (fine-tuning, model families)
``plots.assistant``      notebook 13 (from a base model to an assistant)
``plots.real_llm``       notebook 14 (a real LLM)
=======================  =====================================================================

Notebooks write ``from helpers import plots`` and call ``plots.make_...``: every name they use
is imported here. Logic that is not a figure lives in the module of its concept (a few names of
those are re-exported here because notebooks reach them through ``plots``).
"""

# shared primitives (every notebook)
from helpers.plots.common import (CLASS_COLORS, DPI, FIGSIZE, LiveLoss, attention_heatmap, character_ticks,
                                  decision_regions, loss_curves, new_figure, plain_log_ticks, scatter_classes, show,
                                  to_png, visible_whitespace)

# part 1: networks (notebooks 00-04)
from helpers.autograd import neuron_expression                 # not a figure: notebook 03 reaches it here
from helpers.plots.networks import (BACKWARD_EXAMPLES, draw_graph, learning_rate_sweep, make_activations,
                                    make_backward_step, make_first_slider, make_gradient_costs, make_hidden_space,
                                    make_learning_rate_comparison, make_loss_landscape, make_network_diagram,
                                    make_neuron_boundary, make_training_explorer, scatter_held_out)

# part 2: text (notebooks 05-06)
from helpers.plots.text import (TOKEN_COLORS, make_bigram_table, make_embedding_map, make_sampling_explorer,
                                make_token_colours)

# part 3: the transformer (notebooks 07-08)
from helpers.plots.transformer import (make_attention_explorer, make_attention_heads, make_head_on_text,
                                       make_look_back, make_ngram_losses, make_size_explorer, model_size)
from helpers.plots.transformer import (make_fair_race, make_norm_experiment,   # notebook 08
                                       make_positions_experiment)

# part 4: pretraining (notebooks 09-10)
from helpers.plots.pretraining import (SWEEP_FAMILIES, SWEEP_LABELS, make_generation_explorer, make_play_losses,
                                       make_schedule, make_sweep_explorer)
from helpers.plots.pretraining import make_schedule_experiment  # 09

# part 5: adaptation (notebooks 11-12)
from helpers.families import MASK_KINDS, family_mask            # not a figure: notebook 12 reaches it here
from helpers.plots.adaptation import (METHOD_COLOURS, METHOD_LABELS, confusion_figure, forgetting_figure,
                                      make_finetune_explorer,
                                      make_mask_explorer, make_mask_gallery)

# notebook 13: from a base model to an assistant
from helpers.plots.assistant import (EXPLORER_PROMPTS, make_best_of_n, make_beta_sweep, make_chat_explorer,
                                     make_loss_mask, make_rlhf_diagram, make_sft_scores)

# notebook 14: a real LLM
from helpers.plots.real_llm import (make_attention_map, make_logit_lens, make_next_token_explorer, make_q4_block,
                                    make_rope_figure, make_step_times, token_labels)
