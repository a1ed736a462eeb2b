"""Where an alert event or maintenance record becomes a leaf of the Merkle log and is anchored."""
