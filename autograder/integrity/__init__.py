"""Whether a submission did the work by hand: the static policy over its files (the verdict) and the
names its findings are reported under."""
