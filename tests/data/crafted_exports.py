"""Tiny crafted CRM exports, one per preset, written as the CRM writes them."""

from __future__ import annotations

from pathlib import Path

SALESFORCE: dict[str, str] = {
    "Account.csv": """Id,Name,Industry,NumberOfEmployees,AnnualRevenue,BillingCountryCode,CreatedDate
001A,Acme,Technology,250,1000000,US,2024-01-02T09:00:00.000Z
001B,Beta,Underwater Basketry,40,,DE,2024-01-03T09:00:00.000Z
""",
    "Lead.csv": """Id,CreatedDate,LeadSource,Title,CountryCode,Industry,NumberOfEmployees,Status,ConvertedDate,ConvertedAccountId,ConvertedOpportunityId
00Q1,2024-01-05T10:00:00.000Z,Web,VP Sales,US,Technology,250,Closed - Converted,2024-01-20,001A,0061
00Q2,2024-01-06T10:00:00.000Z,Trade Show,CTO,DE,,,Closed - Not Converted,,,
00Q3,2024-01-07T10:00:00.000Z,Billboard,,,,,Open - Not Contacted,,,
""",
    "LeadHistory.csv": """LeadId,Field,OldValue,NewValue,CreatedDate
00Q2,Status,Open - Not Contacted,Closed - Not Converted,2024-02-01T12:00:00.000Z
""",
    "Opportunity.csv": """Id,AccountId,OwnerId,CreatedDate,Type,Amount,CloseDate,StageName,CurrencyIsoCode
0061,001A,005X,2024-01-20T10:00:00.000Z,New Business,12000,2024-03-15,Closed Won,USD
0062,001B,005Y,2024-02-01T10:00:00.000Z,Existing Customer - Upgrade,5000,2024-06-30,Custom Stage Open,EUR
0063,001A,005X,2024-02-10T10:00:00.000Z,,3000,2024-04-01,Dead,USD
""",
    "OpportunityStage.csv": """ApiName,MasterLabel,IsWon,IsClosed,DefaultProbability
Custom Stage Open,Custom Stage Open,false,false,55
Dead,Dead,false,true,0
""",
    "OpportunityHistory.csv": """OpportunityId,CreatedDate,StageName,Amount,CloseDate
0061,2024-01-20T10:00:00.000Z,Prospecting,10000,2024-03-31
0061,2024-02-10T10:00:00.000Z,Proposal/Price Quote,12000,2024-03-15
0061,2024-03-15T10:00:00.000Z,Closed Won,12000,2024-03-15
0062,2024-02-01T10:00:00.000Z,Custom Stage Open,5000,2024-06-30
0063,2024-02-10T10:00:00.000Z,Qualification,3000,2024-04-01
0063,2024-03-01T10:00:00.000Z,Dead,3000,2024-04-01
""",
    "Task.csv": """Id,WhoId,WhatId,AccountId,CreatedDate,Type
00T1,00Q1,,,2024-01-06T10:00:00.000Z,Email
00T2,0031,0061,001A,2024-02-01T10:00:00.000Z,Call
00T3,0031,,001A,2024-02-02T10:00:00.000Z,Other
00T4,0032,,001B,2024-02-03T10:00:00.000Z,Smoke Signal
00T5,0032,,001B,2024-02-04T10:00:00.000Z,Call
""",
    "Event.csv": """Id,WhoId,WhatId,AccountId,StartDateTime,Type
00U1,0031,0061,001A,2024-02-05T15:00:00.000Z,Demo
00U2,0031,0061,001A,2024-02-06T15:00:00.000Z,Lunch
""",
    "OpportunityContactRole.csv": """OpportunityId,ContactId,Role
0062,0032,Decision Maker
0061,0031,Economic Buyer
""",
}

SALESFORCE_FIELD_HISTORY = """OpportunityId,Field,OldValue,NewValue,CreatedDate
0061,StageName,Prospecting,Proposal/Price Quote,2024-02-10T10:00:00.000Z
0061,Amount,10000,12000,2024-02-10T10:00:00.000Z
0061,StageName,Proposal/Price Quote,Closed Won,2024-03-15T10:00:00.000Z
"""

# Report labels instead of API names, as a Salesforce report export gives them.
SALESFORCE_REPORT_OPPORTUNITIES = """Opportunity ID,Account ID,Opportunity Owner,Created Date,Amount,Close Date,Stage
0061,001A,Rep One,2024-01-20T10:00:00.000Z,12000,2024-03-15,Closed Won
"""

HUBSPOT: dict[str, str] = {
    "companies.csv": """hs_object_id,name,industry,numberofemployees,country,createdate
11,Acme,COMPUTER_SOFTWARE,250,US,2024-01-02T09:00:00Z
12,Beta,WINE_AND_SPIRITS,40,DE,2024-01-03T09:00:00Z
""",
    "contacts.csv": """hs_object_id,associatedcompanyid,createdate,hs_analytics_source,jobtitle,hs_lead_status,hs_lifecyclestage_salesqualifiedlead_date
21,11,2024-01-05T10:00:00Z,ORGANIC_SEARCH,VP Sales,OPEN_DEAL,2024-01-19T10:00:00Z
22,12,2024-01-06T10:00:00Z,AI_REFERRALS,CTO,NEW,
""",
    "deals.csv": """hs_object_id,associatedcompanyid,hubspot_owner_id,createdate,amount,closedate,dealstage,hs_v2_date_entered_qualifiedtobuy,hs_v2_date_entered_contractsent,hs_v2_date_entered_closedwon
31,11,901,2024-01-20T10:00:00Z,12000,2024-03-15T10:00:00Z,closedwon,2024-01-20T10:00:00Z,2024-02-20T10:00:00Z,2024-03-15T10:00:00Z
32,12,902,2024-02-01T10:00:00Z,5000,2024-06-30T10:00:00Z,qualifiedtobuy,2024-02-01T10:00:00Z,,
""",
    "engagements.csv": """hs_object_id,hs_timestamp,hs_engagement_type,associated_company_id,associated_contact_id,associated_deal_id
41,2024-01-06T10:00:00Z,INCOMING_EMAIL,11,21,
42,2024-02-02T10:00:00Z,MEETING,,21,31
43,2024-02-03T10:00:00Z,NOTE,11,21,31
44,2024-02-04T10:00:00Z,CALL,12,22,32
""",
}

FLAT_LEADS = {
    "leads.csv": """Lead ID,Created Date,Lead Source,Company,Country,Lead Status
L1,2024-01-05 10:00,Web,Acme,US,Qualified
L2,2024-01-06 10:00,Trade Show,Acme,US,Unqualified
L3,2024-01-07 10:00,Billboard,Beta,DE,Working
L4,not a date,Web,Gamma,FR,New
""",
}

FLAT_DEALS = {
    "deals.csv": """Opportunity ID,Account Name,Owner,Created Date,Amount,Close Date,Stage,Currency
D1,Acme,rep1,2024-01-20 09:00,12000,2024-03-15,Won,USD
D2,Beta,rep2,2024-02-01 09:00,5000,2024-06-30,Talking,EUR
D3,Acme,rep1,2024-02-10 09:00,3000,2024-04-01,Lost,GBP
""",
}


def write_export(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder
