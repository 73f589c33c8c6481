"""Files a nightly run hands to people: lists, notices, report, quarantine and the run summary."""
