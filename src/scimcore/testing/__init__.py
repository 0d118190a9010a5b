"""The storage contract, shipped so a host's own Storage runs the suite scimcore's backends pass."""
