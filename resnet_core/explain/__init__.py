"""Why one image got its answer: the analysis pass, Grad-CAM and other saliency maps, their checks, comparisons."""
