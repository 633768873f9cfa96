"""Pure domain: identifiers, tender schedule rules, bid form, receipts, records. No I/O."""
