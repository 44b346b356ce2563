"""The customer behind the phone (issue 17): proofs of a phone, cards, merges, the
questionnaire, automatic registration and programme notices."""
