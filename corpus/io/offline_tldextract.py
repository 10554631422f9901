"""Keep libraries that like to fetch things at run time offline."""

from __future__ import annotations

import tldextract


def offline_tld_extractor() -> tldextract.TLDExtract:
    # suffix_list_urls=() makes tldextract use the snapshot shipped in its wheel: no network, no cache dir.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def make_tldextract_offline() -> None:
    """Replace tldextract's module-level extractor (used by `tldextract.extract`, e.g. in Presidio)."""
    import tldextract.tldextract as module

    if getattr(module.TLD_EXTRACTOR, "suffix_list_urls", None) != ():
        module.TLD_EXTRACTOR = offline_tld_extractor()
