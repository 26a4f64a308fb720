from nnunetv2_malenia.knowledge.report_features import specific_features_from_report


def test_negated_clause_does_not_count():
    report = "An irregular hypodense lesion. No pancreatic ductal dilatation is observed."
    assert specific_features_from_report(report) == ["no specific features"]


def test_several_features_in_vocabulary_order():
    report = ("Solid irregular nodule with spiculated margins. Close to the pleura with pleural retraction. "
              "Punctate high-density foci seen within the lesion. Cavitation is present.")
    assert specific_features_from_report(report) == [
        "presence of increased density areas", "spiculated margins", "cavitation", "pleural retraction"]


def test_bile_duct_dilatation_is_not_pancreatic():
    assert specific_features_from_report("Adjacent intrahepatic bile duct dilatation is present") == ["no specific features"]
    assert specific_features_from_report("The pancreatic duct is mildly dilated") == ["pancreatic duct dilatation"]
