"""The task families' toolkit: metrics (classification, text, plismbench), bootstrap intervals,
patient folds, the linear probe, ABMIL and the thread budget they train under.

Only the families (tasks/) and logit_kd use these; the engine does not.
"""
