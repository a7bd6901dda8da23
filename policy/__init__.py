"""Access policy: the Casbin model and rules, the grade and trust scales, the decision point.
Imports nothing of ours."""
