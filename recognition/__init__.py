"""Face recognition: photos and frames in, templates, matches and tracks out.

faces (the only dlib / face_recognition user) · quality (enrolment verdicts) · index (1:N templates)
· tracker (per-camera tracks) · pipeline (process pool, FaceSeen events) · stats.
"""
