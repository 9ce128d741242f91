"""Loan rules (banking-rules §5), pure: no I/O, no clock, no id generation.

`schedule`: the EMI, due dates and whole schedule for every method, penalties, foreclosure and the
net disbursement. `underwriting`: an application's assessment EMI, DTI, LTV, score, band,
recommended rate and outcome. `applications`: where each action leads an application, and who may
take it. `review`: what happens under review (documents, collateral, stages, a co-applicant).
"""
