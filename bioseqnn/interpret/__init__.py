"""Interpretation: attributions, motifs and in-silico experiments.

- :mod:`bioseqnn.interpret.shuffle`: seeded dinucleotide-preserving shuffles (references);
- :mod:`bioseqnn.interpret.attribution`: integrated gradients and DeepLIFT-SHAP through
  Captum, with the hypothetical contributions that motif discovery reads;
- :mod:`bioseqnn.interpret.motifs`: TF-MoDISco (modisco-lite) over attributions, MEME
  output, logos and a report, and Tomtom (memelite) against a motif database;
- :mod:`bioseqnn.interpret.insilico`: motif insertion (marginalisation) and mutation maps.

The libraries are the ``interpret`` extra (``pip install 'bioseqnn[interpret]'``); every
module imports them inside its functions, so ``import bioseqnn`` stays light.
"""
