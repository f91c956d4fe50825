"""Class names, split names and label maps of the datasets the suite knows: their one home."""

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_SPLITS = ("Training", "PublicTest", "PrivateTest")
FERPLUS_CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FERPLUS_VOTE_COLUMNS = FERPLUS_CLASSES + ("unknown", "NF")
CKPLUS_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
#: The split a Kaggle test folder without PublicTest_/PrivateTest_ file-name prefixes becomes.
SINGLE_TEST_SPLIT = "Test"
#: FER-2013 class -> the FER+ class with the same meaning.
FER_TO_FERPLUS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
                  "sad": "sadness", "surprise": "surprise", "neutral": "neutral"}
#: Classes each named dataset must have (loaders check them, case-insensitively).
KNOWN_CLASSES = {"fer2013": FER2013_CLASSES, "ferplus": FERPLUS_CLASSES, "ckplus": CKPLUS_CLASSES}
