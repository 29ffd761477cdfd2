enum DistributedPlaceholder {}
