"""NHS Talking Therapies data set: SourceOfReferralIAPT codes.

Copied from shared/data/source_of_referral.csv so the app never reads outside itself at run time.
"""

# code: (group, description)
SOURCE_OF_REFERRAL = {
    "A1": ("Primary Health Care", "General Medical Practitioner Practice"),
    "A2": ("Primary Health Care", "Health Visitor"),
    "A3": ("Primary Health Care", "Other Primary Health Care"),
    "A4": ("Primary Health Care", "Maternity Service"),
    "B1": ("Self Referral", "Self"),
    "B2": ("Self Referral", "Carer/Relative"),
    "C1": ("Local Authority and Other Public Services", "Social Services"),
    "C2": ("Local Authority and Other Public Services", "Education Service / Educational Establishment"),
    "C3": ("Local Authority and Other Public Services", "Housing Service"),
    "D1": ("Employer", "Employer"),
    "D2": ("Employer", "Employer: Occupational Health"),
    "E1": ("Justice System", "Police"),
    "E2": ("Justice System", "Courts"),
    "E3": ("Justice System", "Probation Service"),
    "E4": ("Justice System", "Prison"),
    "E5": ("Justice System", "Court Liaison and Diversion Service"),
    "E6": ("Justice System", "Youth Offending Team"),
    "F1": ("Child Health", "School Nurse"),
    "F2": ("Child Health", "Hospital-based Paediatrics"),
    "F3": ("Child Health", "Community-based Paediatrics"),
    "G1": ("Independent Sector", "Independent sector - Medium Secure Inpatients"),
    "G2": ("Independent Sector", "Independent Sector - Low Secure Inpatients"),
    "G3": ("Independent Sector", "Other Independent Sector Mental Health Services"),
    "G4": ("Independent Sector", "Voluntary Sector"),
    "H1": ("Acute Secondary Care", "Emergency Care Department"),
    "H2": ("Acute Secondary Care", "Other secondary care specialty"),
    "I1": ("Other Mental Health NHS Trust", "Temporary transfer from another Mental Health NHS Trust"),
    "I2": ("Other Mental Health NHS Trust", "Permanent transfer from another Mental Health NHS Trust"),
    "M1": ("Other", "Asylum Services"),
    "M2": ("Other", "Telephone or Electronic Access Service"),
    "M3": ("Other", "Out of Area Agency"),
    "M4": ("Other", "Drug Action Team / Drug Misuse Agency"),
    "M5": ("Other", "Jobcentre Plus"),
    "M6": ("Other", "Other SERVICE or agency"),
    "M7": ("Other", "Single Point of Access Service"),
    "M8": ("Other", "Debt agency"),
    "N1": (
        "Improving Access to Psychological Therapies Service",
        "Stepped up from Low Intensity Improving Access to Psychological Therapies Service",
    ),
    "N2": (
        "Improving Access to Psychological Therapies Service",
        "Stepped down from High Intensity Improving Access to Psychological Therapies Service",
    ),
    "N4": ("Improving Access to Psychological Therapies Service", "Other Improving Access to Psychological Therapies Service"),
    "P1": ("Internal", "Internal Referral"),
    "Q1": ("Drop-in Service", "Mental Health Drop In Service"),
}

# A self-referral made at a co-located site.
SELF_REFERRAL = "B1"
# Jobcentre Plus referred the person: the report flags it.
JOBCENTRE_PLUS = "M5"

SOURCE_OF_REFERRAL_CHOICES = [(code, f"{code}: {description}") for code, (_, description) in SOURCE_OF_REFERRAL.items()]
