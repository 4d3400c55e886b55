#!/usr/bin/env bash
# Install Tesseract 5 with its French and English models (Debian `tesseract-ocr`,
# `tesseract-ocr-fra`, `tesseract-ocr-eng`) for OCR of scanned PDFs and images (ingestion/ocr.py).
# Installs with apt when missing and we are root; never fails the build: without it scans fail
# with a cause that says so, and the OCR tests skip and say why (CI sets
# GEDRAG_TEST_REQUIRE_SERVICES=1 so that they fail instead).
set -u
need=()
command -v tesseract >/dev/null || need+=(tesseract-ocr)
for lang in fra eng; do
  tesseract --list-langs 2>/dev/null | grep -qx "$lang" || need+=("tesseract-ocr-$lang")
done
if [ "${#need[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if command -v tesseract >/dev/null; then
  echo "ocr: $(tesseract --version 2>/dev/null | head -n1), languages: $(tesseract --list-langs 2>/dev/null | tail -n +2 | tr '\n' ' ')"
else
  echo "ocr: Tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-fra); scans cannot be read and the OCR tests will skip"
fi
exit 0
