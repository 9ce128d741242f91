"""The payment worker: payment orders, limits, fees, approvals, rails and the clearing partner."""
