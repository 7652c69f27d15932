"""Dataset creation as FSD50K and FSDnoisy18k were made (thesis chapter "The Freesound Dataset 50k"):
raw material (`raw`) -> candidate labels nominated from tags and text (`nominate`, Beam) -> rater votes
aggregated into validated labels (`validate`, Beam) -> vocabulary fixed by merging small classes, uploader-
disjoint development/evaluation split, train/validation inside development, labels propagated, written in
a released layout (`assemble`). `synthetic_raw` makes raw material whose truth is known."""
