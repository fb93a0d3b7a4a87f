"""Training of the segmentation networks, the flow network and the decision network, plus the
confidence-score generation the decision network learns from. One module per trained network."""
