"""Service levels: time-series points of each criterion, compliance over its window,
error budget, burn-rate alerts and the plots of them."""
