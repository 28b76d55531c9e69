"""The binary-vs-multiclass rule, in one place.

Two classes are a binary problem: the model has ONE logit (sigmoid, P(classes[1])), the Kaggle submission
has `id,label` with label = P(classes[1]), and ROC AUC is the binary one. Three or more classes get one
logit and one probability column per class. Every module that branches on this asks `is_binary`.
"""


def is_binary(num_classes: int) -> bool:
    """True for exactly two classes (one sigmoid unit); False for three or more (softmax)."""
    return num_classes == 2
