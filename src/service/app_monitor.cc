// being split out
