"""The opening record as a signed PDF, and PDF signatures inside bid packages.

``pdf_render`` lays the record out (reportlab) with the record JSON attached; ``pades``
signs it with a platform key on the token (PAdES B-T plus a document time stamp) and
validates it; ``bid_pdfs`` reports the signatures in bidders' PDF documents at the
opening. Nothing here decides who may open a tender or when.
"""
